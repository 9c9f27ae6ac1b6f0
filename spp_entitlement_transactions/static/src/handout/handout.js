/** @odoo-module **/
/*
 * The agents' handout screen (issue 20): choose the service point once, scan or type a
 * voucher's code (checked as typed), see the household's open entitlements at the point,
 * hand out all or part of them, record who collected, and print the receipt.
 *
 * Every handout goes through the public redemption API (`redeem`, `reverse`,
 * `redeem_batch`, `record_receipt`), with references made on the device: a handout is
 * kept in localStorage before it is sent, so a double tap, a retry or a reload sends the
 * same references again and the server adds nothing. Without a connection, the point's
 * open entitlements (cached when the point was chosen) still answer, handouts wait in a
 * local queue and go with `redeem_batch` when the connection is back.
 */
import { Component, onMounted, onWillStart, onWillUnmount, useRef, useState } from "@odoo/owl";
import { browser } from "@web/core/browser/browser";
import { _t } from "@web/core/l10n/translation";
import { ConnectionLostError } from "@web/core/network/rpc_service";
import { registry } from "@web/core/registry";
import { SignatureDialog } from "@web/core/signature/signature_dialog";
import { useService } from "@web/core/utils/hooks";
import {
    isBarcodeScannerSupported,
    scanBarcode,
} from "@web/webclient/barcode/barcode_scanner";
import { BODY_LENGTH, display, isLegacyValid, isValid, normalize } from "../js/ern";

const MODEL = "spp.entitlement.transaction";
const SYNC_INTERVAL = 30000;

/** Plain words for the API's bracketed refusal codes: what happened and what to do. */
export const PLAIN_WORDS = {
    malformed_code: _t("This is not a voucher code: a code has 9 letters and digits (XXXX-XXXX-X)."),
    bad_check_character: _t(
        "The code has a mistake: a character is wrong or two are swapped. Read it again from the voucher."
    ),
    unknown_code: _t("No voucher has this code. Check the voucher and type it again."),
    wrong_service_point: _t(
        "This voucher is collected at another service point: send the person to the point printed on it."
    ),
    not_approved: _t("This voucher is not approved yet: nothing can be handed out. Ask the office."),
    fully_redeemed: _t("Everything on this voucher was already handed out."),
    not_yet_valid: _t("This voucher cannot be used yet: look at the dates on it."),
    expired: _t("This voucher has expired: nothing can be handed out."),
    over_balance: _t("That is more than what is left: lower the quantity."),
    bad_quantity: _t("Type a quantity above 0."),
    reference_reused: _t("This handout was already sent with other figures: start a new handout."),
    not_your_service_point: _t("You are not an agent of this service point: choose one of your points."),
    not_an_agent: _t("Your account is not a service point agent: ask an administrator."),
    not_allowed: _t("Your account may not look vouchers up: ask an administrator."),
    not_reversible: _t("This handout can no longer be undone (the voucher or its cycle is closed)."),
    unknown_reference: _t("The server does not know this handout yet: send the waiting handouts first."),
    not_alternate_collector: _t(
        "This person is not registered as the household's alternate collector: hand out to the beneficiary."
    ),
    receipt_exists: _t("This handout already has its receipt."),
    bad_signature: _t("The signature could not be read: take it again or leave it out."),
    bad_reason: _t("Say why the handout is undone (a few words)."),
    not_in_list: _t(
        "Offline, and this code is not in the list kept on this device: serve this person when the connection is back."
    ),
};

/** {code, words, message} for an error: its bracketed code chosen the plain words. */
export function explain(message) {
    const match = /^\s*\[([a-z_]+)\]/.exec(message || "");
    const code = match ? match[1] : false;
    return { code, words: (code && PLAIN_WORDS[code]) || message, message: message || "" };
}

function uuid() {
    const crypto = window.crypto;
    if (crypto.randomUUID) {
        return crypto.randomUUID();
    }
    // Non-secure contexts (plain http on a LAN) have no randomUUID: same format, from getRandomValues.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "YYYY-MM-DD HH:MM:SS", UTC: the device time `redeem_batch` takes. */
function deviceTime() {
    return new Date().toISOString().slice(0, 19).replace("T", " ");
}

export class Handout extends Component {
    static template = "spp_entitlement_transactions.Handout";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.dialog = useService("dialog");
        this.notification = useService("notification");
        this.user = useService("user");
        this.codeInput = useRef("code");
        this.sending = false; // not reactive: a second tap while sending does nothing
        this.canScan = Boolean(isBarcodeScannerSupported());
        this.state = useState({
            points: [],
            pointId: false,
            code: "",
            codeError: false,
            household: false,
            lines: [],
            collector: "beneficiary",
            idChecked: false,
            signature: false,
            error: false,
            receipt: false,
            offline: false,
            queue: [],
            refused: [],
            cacheDate: false,
            busy: false,
            undoLine: false,
            undoReason: "",
        });
        onWillStart(async () => {
            const points = await this.orm.searchRead(
                "spp.service.point",
                [["user_ids", "in", [this.user.userId]]],
                ["name", "code"],
                { order: "name" }
            );
            this.state.points = points;
            const remembered = Number(browser.localStorage.getItem(this.key("point")));
            const point = points.find((p) => p.id === remembered) || (points.length === 1 && points[0]);
            if (point) {
                await this.choosePoint(point.id);
            }
        });
        this.onOnline = () => this.sync();
        onMounted(() => {
            browser.addEventListener("online", this.onOnline);
            this.timer = browser.setInterval(() => this.state.queue.length && this.sync(), SYNC_INTERVAL);
        });
        onWillUnmount(() => {
            browser.removeEventListener("online", this.onOnline);
            browser.clearInterval(this.timer);
        });
    }

    // ------------------------------------------------------------------
    // Device storage
    // ------------------------------------------------------------------
    key(name, pointId = false) {
        return `spp_handout.${this.user.userId}.${name}${pointId ? "." + pointId : ""}`;
    }
    load(name, fallback) {
        const raw = browser.localStorage.getItem(this.key(name, this.state.pointId));
        return raw ? JSON.parse(raw) : fallback;
    }
    save(name, value) {
        browser.localStorage.setItem(this.key(name, this.state.pointId), JSON.stringify(value));
    }

    get point() {
        return this.state.points.find((p) => p.id === this.state.pointId);
    }

    /** The household whose entitlements include `code`, from the device's list. */
    cachedHousehold(code) {
        code = normalize(code);
        const households = this.load("cache", { households: [] }).households;
        return households.find((h) => h.entitlements.some((e) => normalize(e.code) === code));
    }

    // ------------------------------------------------------------------
    // Service point
    // ------------------------------------------------------------------
    async choosePoint(pointId) {
        this.state.pointId = Number(pointId) || false;
        this.reset();
        if (!this.state.pointId) {
            return;
        }
        browser.localStorage.setItem(this.key("point"), String(this.state.pointId));
        this.state.queue = this.load("queue", []);
        this.state.refused = this.load("refused", []);
        this.state.cacheDate = this.load("cache", {}).date || false;
        await this.sync();
        await this.refreshCache();
    }

    async onChangePoint(ev) {
        await this.choosePoint(ev.target.value);
    }

    /** Keep the point's open entitlements on the device (online only). */
    async refreshCache() {
        try {
            const households = await this.orm.silent.call(MODEL, "handout_entitlements", [
                this.state.pointId,
            ]);
            this.applyQueueTo(households);
            const date = new Date().toISOString();
            this.save("cache", { date, households });
            this.state.cacheDate = date;
            this.state.offline = false;
        } catch (error) {
            this.handleConnection(error);
        }
    }

    /** Balances on the device = the server's minus what waits in the queue. */
    applyQueueTo(households) {
        for (const handout of this.state.queue) {
            for (const line of handout.lines) {
                for (const household of households) {
                    const entitlement = household.entitlements.find((e) => e.code === line.code);
                    if (entitlement) {
                        entitlement.balance = Math.max(0, entitlement.balance - line.quantity);
                    }
                }
            }
        }
    }

    handleConnection(error) {
        if (error instanceof ConnectionLostError) {
            this.state.offline = true;
            return true;
        }
        throw error;
    }

    // ------------------------------------------------------------------
    // Code: typed or scanned
    // ------------------------------------------------------------------
    reset() {
        Object.assign(this.state, {
            code: "",
            codeError: false,
            household: false,
            lines: [],
            collector: "beneficiary",
            idChecked: false,
            signature: false,
            error: false,
        });
    }

    onInputCode(ev) {
        this.state.code = ev.target.value;
        this.state.error = false;
        this.state.codeError = this.codeProblem(this.state.code);
    }

    /** False, or the plain words for a typed code that cannot be right (no call made). */
    codeProblem(text) {
        const code = normalize(text);
        if (code.length < BODY_LENGTH + 1) {
            return false; // still typing
        }
        if (isValid(code)) {
            return false;
        }
        if (isLegacyValid(code) && (!this.state.offline || this.cachedHousehold(display(code)))) {
            return false; // an older voucher: the server checks it is a real one
        }
        return code.length > BODY_LENGTH + 1 ? PLAIN_WORDS.malformed_code : PLAIN_WORDS.bad_check_character;
    }

    async onSubmitCode(ev) {
        ev.preventDefault();
        await this.findCode(this.state.code);
    }

    async onScan() {
        let code;
        try {
            code = await scanBarcode(this.env);
        } catch (error) {
            this.state.error = { words: error.message || String(error), message: "" };
            return;
        }
        if (code) {
            this.state.code = display(code);
            await this.findCode(code);
        }
    }

    async findCode(text) {
        const code = normalize(text);
        const problem = code.length === BODY_LENGTH + 1 ? this.codeProblem(code) : PLAIN_WORDS.malformed_code;
        this.state.codeError = problem;
        this.state.receipt = false;
        if (problem) {
            return;
        }
        this.state.busy = true;
        try {
            let household;
            try {
                const answer = await this.orm.silent.call(MODEL, "handout_lookup", [
                    this.state.pointId,
                    display(code),
                ]);
                this.state.offline = false;
                household = answer.household;
                this.applyQueueTo([household]);
                if (!household.entitlements.length) {
                    this.state.error = explain(
                        answer.state === "redeemed"
                            ? "[fully_redeemed] " + display(code)
                            : `[not_approved] ${display(code)} (${answer.state})`
                    );
                }
            } catch (error) {
                if (!(error instanceof ConnectionLostError)) {
                    this.state.error = explain(error.data ? error.data.message : error.message);
                    return;
                }
                this.state.offline = true;
                household = this.cachedHousehold(display(code));
                if (!household) {
                    this.state.error = explain("[not_in_list] " + display(code));
                    return;
                }
            }
            this.showHousehold(household);
        } finally {
            this.state.busy = false;
        }
    }

    showHousehold(household) {
        this.state.household = household;
        this.state.lines = household.entitlements
            .filter((e) => e.balance > 0)
            .map((e) => ({ ...e, quantity: e.balance, give: true }));
        this.state.collector = "beneficiary";
        this.state.idChecked = false;
        this.state.signature = false;
    }

    // ------------------------------------------------------------------
    // Handout
    // ------------------------------------------------------------------
    onQuantity(line, ev) {
        line.quantity = Number(String(ev.target.value).replace(",", "."));
    }

    async onSign() {
        const name =
            this.state.collector === "beneficiary" ? this.state.household.beneficiary : this.state.collector;
        this.dialog.add(SignatureDialog, {
            defaultName: name || "",
            nameAndSignatureProps: { mode: "draw", noInputName: true },
            uploadSignature: ({ signatureImage }) => {
                this.state.signature = Array.isArray(signatureImage) ? signatureImage[1] : signatureImage;
            },
        });
    }

    get lineProblem() {
        const given = this.state.lines.filter((l) => l.give);
        if (!given.length) {
            return _t("Tick at least one item to hand out.");
        }
        for (const line of given) {
            if (!(line.quantity > 0)) {
                return PLAIN_WORDS.bad_quantity;
            }
            if (line.quantity > line.balance + 1e-9) {
                return PLAIN_WORDS.over_balance;
            }
        }
        return false;
    }

    /** Confirm: the handout is stored with its references first, then sent. */
    async onConfirm() {
        if (this.sending || this.lineProblem) {
            return;
        }
        const household = this.state.household;
        const handout = {
            id: uuid(),
            household: household.household,
            householdId: household.household_id,
            beneficiary: household.beneficiary,
            collectedBy: this.state.collector === "beneficiary" ? "beneficiary" : "alternate",
            collectorName: this.state.collector === "beneficiary" ? household.beneficiary : this.state.collector,
            idChecked: this.state.idChecked,
            signature: this.state.signature || false,
            deviceTime: deviceTime(),
            lines: this.state.lines
                .filter((l) => l.give)
                .map((l) => ({
                    code: l.code,
                    product: l.product,
                    unit: l.uom || l.currency,
                    quantity: l.quantity,
                    reference: uuid(),
                    device_time: deviceTime(),
                })),
        };
        this.save("pending", handout);
        await this.send(handout);
    }

    /** Send `handout` (again: same references, nothing added twice). */
    async send(handout) {
        if (this.sending) {
            return;
        }
        this.sending = true;
        this.state.busy = true;
        this.state.error = false;
        try {
            for (const line of handout.lines) {
                if (!line.answer) {
                    line.answer = await this.orm.silent.call(MODEL, "redeem", [
                        line.code,
                        line.quantity,
                        this.state.pointId,
                        line.reference,
                    ]);
                    this.save("pending", handout);
                }
            }
            handout.receipt = await this.recordReceipt(handout);
            this.state.offline = false;
            browser.localStorage.removeItem(this.key("pending", this.state.pointId));
            this.showReceipt(handout);
        } catch (error) {
            if (error instanceof ConnectionLostError) {
                this.state.offline = true;
                this.enqueue(handout);
            } else {
                this.state.error = explain(error.data ? error.data.message : error.message);
                if (handout.lines.some((l) => l.answer)) {
                    // part went through: show it, the rest can be handed out again
                    browser.localStorage.removeItem(this.key("pending", this.state.pointId));
                    handout.lines = handout.lines.filter((l) => l.answer);
                    this.showReceipt(handout);
                }
            }
        } finally {
            this.sending = false;
            this.state.busy = false;
        }
    }

    async recordReceipt(handout) {
        return this.orm.silent.call(MODEL, "record_receipt", [
            this.state.pointId,
            handout.lines.map((l) => l.reference),
            handout.collectedBy,
            handout.collectorName,
            handout.idChecked,
            handout.signature,
        ]);
    }

    showReceipt(handout) {
        this.state.receipt = handout;
        this.state.household = false;
        this.state.lines = [];
        this.state.code = "";
        this.state.codeError = false;
        this.lowerCache(handout);
    }

    /** The device's list knows what was just handed out. */
    lowerCache(handout) {
        const cache = this.load("cache", false);
        if (!cache) {
            return;
        }
        for (const line of handout.lines) {
            for (const household of cache.households) {
                const entitlement = household.entitlements.find((e) => e.code === line.code);
                if (entitlement) {
                    entitlement.balance = line.answer
                        ? line.answer.balance
                        : Math.max(0, entitlement.balance - line.quantity);
                }
            }
        }
        this.save("cache", cache);
    }

    /** Retry the last confirmation: the same references, so nothing is added. */
    async onSendAgain() {
        const handout = this.state.receipt;
        for (const line of handout.lines) {
            delete line.answer;
        }
        await this.send(handout);
    }

    onNext() {
        this.state.receipt = false;
        this.reset();
    }

    onPrint() {
        browser.print();
    }

    get receiptPdfUrl() {
        const receipt = this.state.receipt && this.state.receipt.receipt;
        return receipt
            ? `/report/pdf/spp_entitlement_transactions.receipt_document/${receipt.receipt_id}`
            : false;
    }

    // ------------------------------------------------------------------
    // Undo
    // ------------------------------------------------------------------
    onAskUndo(line) {
        this.state.undoLine = line.reference;
        this.state.undoReason = _t("Handed out by mistake");
    }

    async onUndo(line) {
        if (this.sending) {
            return;
        }
        this.sending = true;
        this.state.busy = true;
        try {
            line.undone = await this.orm.silent.call(MODEL, "reverse", [
                line.reference,
                this.state.pointId,
                this.state.undoReason,
            ]);
            this.state.undoLine = false;
            const cache = this.load("cache", false);
            if (cache) {
                for (const household of cache.households) {
                    const entitlement = household.entitlements.find((e) => e.code === line.code);
                    if (entitlement) {
                        entitlement.balance = line.undone.balance;
                    }
                }
                this.save("cache", cache);
            }
        } catch (error) {
            if (error instanceof ConnectionLostError) {
                this.state.offline = true;
                this.state.error = { words: _t("Undo needs the connection: try again when it is back."), message: "" };
            } else {
                this.state.error = explain(error.data ? error.data.message : error.message);
            }
        } finally {
            this.sending = false;
            this.state.busy = false;
        }
    }

    // ------------------------------------------------------------------
    // Offline queue
    // ------------------------------------------------------------------
    enqueue(handout) {
        handout.queued = true;
        const queue = this.load("queue", []);
        if (!queue.some((h) => h.id === handout.id)) {
            queue.push(handout);
        }
        this.save("queue", queue);
        this.state.queue = queue;
        browser.localStorage.removeItem(this.key("pending", this.state.pointId));
        this.showReceipt(handout);
    }

    /** Send what waits: a pending confirmation, then the queue with `redeem_batch`. */
    async sync() {
        if (!this.state.pointId || this.syncing) {
            return;
        }
        this.syncing = true;
        try {
            const pending = this.load("pending", false);
            if (pending) {
                this.enqueue(pending); // was being sent when the page went away
                this.state.receipt = false;
            }
            const queue = this.load("queue", []);
            if (!queue.length) {
                return;
            }
            const lines = queue.flatMap((h) => h.lines.filter((l) => !l.answer));
            if (lines.length) {
                const answers = await this.orm.silent.call(MODEL, "redeem_batch", [
                    this.state.pointId,
                    lines.map(({ code, quantity, reference, device_time }) => ({
                        code,
                        quantity,
                        reference,
                        device_time,
                    })),
                ]);
                lines.forEach((line, index) => {
                    line.answer = answers[index];
                });
                this.save("queue", queue);
            }
            const refused = this.load("refused", []);
            const left = [];
            for (const handout of queue) {
                const errors = handout.lines.filter((l) => l.answer && l.answer.error);
                for (const line of errors) {
                    refused.push({
                        ...line,
                        household: handout.household,
                        explained: explain(line.answer.error),
                    });
                }
                handout.lines = handout.lines.filter((l) => !(l.answer && l.answer.error));
                if (handout.lines.length) {
                    try {
                        handout.receipt = await this.recordReceipt(handout);
                    } catch (error) {
                        if (error instanceof ConnectionLostError) {
                            left.push(handout);
                            continue;
                        }
                        refused.push({
                            code: handout.lines.map((l) => l.code).join(", "),
                            household: handout.household,
                            explained: explain(error.data ? error.data.message : error.message),
                        });
                    }
                }
            }
            this.save("queue", left);
            this.save("refused", refused);
            this.state.queue = left;
            this.state.refused = refused;
            this.state.offline = false;
        } catch (error) {
            this.handleConnection(error);
        } finally {
            this.syncing = false;
        }
    }

    async onSync() {
        await this.sync();
        if (!this.state.offline) {
            await this.refreshCache();
        }
    }

    onClearRefused() {
        this.save("refused", []);
        this.state.refused = [];
    }
}

registry.category("actions").add("spp_entitlement_transactions.handout", Handout);
