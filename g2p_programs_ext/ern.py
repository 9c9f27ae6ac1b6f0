"""Entitlement reference numbers (ERN): short, unguessable, with a check character.

An ERN is 8 random characters from ``ALPHABET`` (drawn with :mod:`secrets`, never a
sequence) followed by one check character from the same alphabet, so that every
character of a code can be typed and read aloud without doubt (no ``0 O 1 I L``).

The check is a pure system in the manner of ISO/IEC 7064 with the prime modulus 31
(the alphabet's size) and radix 3: each character's value is its index in ``ALPHABET``
and a code is valid when ``sum(value_i * 3^(8 - i)) ≡ 1 (mod 31)`` over its 9
characters (the check character has weight 1). 3 is a primitive root modulo 31, so the
9 weights ``3^8 .. 3^0`` are distinct and non-zero; 31 being prime, a single wrong
character changes the sum by ``w * (a - b) ≢ 0`` and a swap of two adjacent ones by
``(w_i - w_i+1) * (a - b) ≢ 0``: every single wrong character and every adjacent swap
is caught (proved exhaustively in g2p_programs_ext/tests/test_entitlements.py). The
same algorithm runs in the agents' screen as they type
(spp_entitlement_transactions/static/src/js/ern.js); tests check both agree.

Codes issued before this check (ISO/IEC 7064 MOD 37-2 over 0-9, A-Z and ``*``) are
*legacy* codes: :func:`is_legacy_valid` recognizes them; the redemption API accepts one
only when it is the code of an existing entitlement (see
``spp.entitlement.transaction._check_code``), so printed vouchers keep working while a
mistyped new code is still refused.

Printed as ``XXXX-XXXX-C``; dashes, spaces and case are ignored when reading one.
"""

import re
import secrets

# Random part and check character: no 0/O, 1/I/L, to be read over the phone without doubt.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
BODY_LENGTH = 8
MODULUS = 31  # prime, and the alphabet's size
RADIX = 3  # a primitive root modulo 31: the weights 3^8 .. 3^0 are distinct
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_ALPHABET_SIZE = len(ALPHABET)
_UNBIASED_BELOW = 256 - 256 % _ALPHABET_SIZE  # 248: the largest multiple of 31 up to 256

# Legacy codes (issued before the 31-character check): ISO/IEC 7064 MOD 37-2. Also the
# characters a typed code may hold before it is refused as malformed rather than as a
# wrong check character.
ISO7064_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_LEGACY_VALUE = {c: i for i, c in enumerate(ISO7064_CHARSET)}

assert len(ALPHABET) == MODULUS


def weights(length=BODY_LENGTH + 1):
    """The weight of each position of a code of ``length`` characters (check last, weight 1)."""
    return [pow(RADIX, length - 1 - i, MODULUS) for i in range(length)]


def check_character(body):
    """The check character (from ``ALPHABET``) of ``body``, 8 characters of ``ALPHABET``.

    :raise KeyError: a character of ``body`` is not in ``ALPHABET``."""
    p = 0
    for char in body:
        p = ((p + _VALUE[char]) * RADIX) % MODULUS
    return ALPHABET[(MODULUS + 1 - p) % MODULUS]


def legacy_check_character(body):
    """ISO/IEC 7064 MOD 37-2 check character of ``body`` (codes issued before the
    31-character check; upper-case alphanumerics)."""
    p = 0
    for char in body:
        p = ((p + _LEGACY_VALUE[char]) * 2) % 37
    return ISO7064_CHARSET[(38 - p) % 37]


def normalize(code):
    """Upper-case, without separators: what is stored and compared."""
    return re.sub(r"[\s\-]", "", str(code or "")).upper()


def is_valid(code):
    """True when ``code`` (any case, with or without dashes) is 9 characters of
    ``ALPHABET`` with a correct check character."""
    code = normalize(code)
    if len(code) != BODY_LENGTH + 1 or any(c not in _VALUE for c in code):
        return False
    return check_character(code[:-1]) == code[-1]


def is_legacy_valid(code):
    """True when ``code`` has a correct ISO/IEC 7064 MOD 37-2 check character (a code
    issued before the 31-character check)."""
    code = normalize(code)
    if len(code) != BODY_LENGTH + 1 or any(c not in _LEGACY_VALUE for c in code) or "*" in code[:-1]:
        return False
    return legacy_check_character(code[:-1]) == code[-1]


def generate():
    """A new random ERN, normalized (9 characters of ``ALPHABET``, no separators)."""
    # One call to the OS's CSPRNG per code (not one per character: approvals make 100,000
    # at once); bytes >= 248 are dropped so that each of the 31 characters is equally likely.
    body = ""
    while len(body) < BODY_LENGTH:
        body += "".join(ALPHABET[b % _ALPHABET_SIZE] for b in secrets.token_bytes(16) if b < _UNBIASED_BELOW)
    body = body[:BODY_LENGTH]
    return body + check_character(body)


def display(code):
    """``7KQ2MX4P9`` -> ``7KQ2-MX4P-9``."""
    code = normalize(code)
    return "%s-%s-%s" % (code[:4], code[4:8], code[8:]) if len(code) == BODY_LENGTH + 1 else code
