"""Refusal messages: a bracketed code, which no translation changes, then the text.

Every refusal of the suite (UserError, ValidationError, AccessError) starts with a code
such as ``[over_budget]`` that clients and tests match; the text after it is translated.
Keeping the code outside ``_()`` means a translator never sees it, so a translation
cannot change or drop it::

    raise UserError(coded("over_budget", _("Approving these ... %s", figure)))
"""


def coded(code, message):
    """``"[code] message"``: ``code`` (str, the README's error code, never translated)
    then ``message`` (str, already translated with ``_()``). :return: str"""
    return "[%s] %s" % (code, message)
