"""Entitlement reference numbers (ERN): short, unguessable, with a check character.

An ERN is 8 random characters from ``ALPHABET`` (drawn with :mod:`secrets`, never a
sequence) followed by one check character computed with ISO/IEC 7064 MOD 37-2 (pure
system, modulus 37, radix 2). That check catches every single wrong character and every
swap of two adjacent characters (weights 2^i mod 37 are distinct and non-zero, 37 being
prime), which Luhn-style schemes do not. Printed as ``XXXX-XXXX-C``; dashes, spaces and
case are ignored when reading one.
"""

import re
import secrets

ISO7064_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
# Random part: no 0/O, 1/I/L, to be read over the phone without doubt.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
BODY_LENGTH = 8
_VALUE = {c: i for i, c in enumerate(ISO7064_CHARSET)}
_ALPHABET_SIZE = len(ALPHABET)
_UNBIASED_BELOW = 256 - 256 % _ALPHABET_SIZE  # 248: the largest multiple of 31 up to 256


def check_character(body):
    """ISO/IEC 7064 MOD 37-2 check character of ``body`` (upper-case alphanumerics)."""
    p = 0
    for char in body:
        p = ((p + _VALUE[char]) * 2) % 37
    return ISO7064_CHARSET[(38 - p) % 37]


def normalize(code):
    """Upper-case, without separators: what is stored and compared."""
    return re.sub(r"[\s\-]", "", str(code or "")).upper()


def is_valid(code):
    """True when ``code`` (any case, with or without dashes) has a correct check character."""
    code = normalize(code)
    if len(code) != BODY_LENGTH + 1 or any(c not in _VALUE for c in code) or "*" in code[:-1]:
        return False
    return check_character(code[:-1]) == code[-1]


def generate():
    """A new random ERN, normalized (9 characters, no separators)."""
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
