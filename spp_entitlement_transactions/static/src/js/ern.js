/** @odoo-module **/
/*
 * The ERN check of g2p_programs_ext/ern.py, in the browser: the handout screen refuses
 * a mistyped or swapped code as it is typed, before any call. Same alphabet, modulus 31,
 * radix 3; tests (spp_entitlement_transactions/tests/test_handout_tour.py) run the same
 * vectors through both.
 */
export const ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
export const LEGACY_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
export const BODY_LENGTH = 8;
const MODULUS = 31;
const RADIX = 3;

/** Upper-case, without spaces and dashes. */
export function normalize(code) {
    return String(code || "")
        .replace(/[\s-]/g, "")
        .toUpperCase();
}

/** The check character of an 8-character body of ALPHABET characters (undefined if not). */
export function checkCharacter(body) {
    let p = 0;
    for (const char of body) {
        const value = ALPHABET.indexOf(char);
        if (value < 0) {
            return undefined;
        }
        p = ((p + value) * RADIX) % MODULUS;
    }
    return ALPHABET[(MODULUS + 1 - p) % MODULUS];
}

/** True when the code (any case, dashes allowed) has a correct check character. */
export function isValid(code) {
    code = normalize(code);
    if (code.length !== BODY_LENGTH + 1 || [...code].some((c) => !ALPHABET.includes(c))) {
        return false;
    }
    return checkCharacter(code.slice(0, -1)) === code.slice(-1);
}

/** True for a code issued before the 31-character check (ISO 7064 MOD 37-2). */
export function isLegacyValid(code) {
    code = normalize(code);
    if (
        code.length !== BODY_LENGTH + 1 ||
        [...code].some((c) => !LEGACY_CHARSET.includes(c)) ||
        code.slice(0, -1).includes("*")
    ) {
        return false;
    }
    let p = 0;
    for (const char of code.slice(0, -1)) {
        p = ((p + LEGACY_CHARSET.indexOf(char)) * 2) % 37;
    }
    return LEGACY_CHARSET[(38 - p) % 37] === code.slice(-1);
}

/** "7KQ2MX4P9" -> "7KQ2-MX4P-9". */
export function display(code) {
    code = normalize(code);
    return code.length === BODY_LENGTH + 1
        ? `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8)}`
        : code;
}
