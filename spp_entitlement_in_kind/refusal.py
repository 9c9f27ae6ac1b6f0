"""Refusal messages of this addon: a bracketed code, which no translation changes, then
the translated text: ``raise UserError(coded("out_of_stock", _("...")))``."""


def coded(code, message):
    """``"[code] message"``: ``code`` (str, the error code of readme/USAGE.md, never
    translated) then ``message`` (str, already translated with ``_()``). :return: str"""
    return "[%s] %s" % (code, message)
