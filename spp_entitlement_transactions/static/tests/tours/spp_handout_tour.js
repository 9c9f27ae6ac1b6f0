/** @odoo-module **/
/*
 * The agents' handout screen at a phone's width (run by
 * spp_entitlement_transactions/tests/test_handout_tour.py). The test gives the codes in
 * the cookie `spp_tour` (JSON); after each step that may write, the tour reads the
 * database through the agent's own access (search_read of the transactions) and fails
 * when it does not hold what the step should have left; the test checks it again at
 * the end. The offline tour asks the test to cut and restore Chromium's network (body
 * attribute data-spp-network), as a dropped connection would.
 */
import { registry } from "@web/core/registry";

const PAGE_LOAD = 60000;

function tourData() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("spp_tour="));
    return JSON.parse(decodeURIComponent(cookie.split("=")[1]));
}

function fill(trigger, value, content) {
    return {
        content: content || `Fill ${trigger}`,
        trigger,
        run() {
            const el = this.$anchor[0];
            el.value = typeof value === "function" ? value() : value;
            el.dispatchEvent(new Event("input", { bubbles: true }));
            el.dispatchEvent(new Event("change", { bubbles: true }));
        },
    };
}

const check = (trigger, content) => ({ content, trigger, isCheck: true });

async function callKw(model, method, args, kwargs = {}) {
    const response = await fetch(`/web/dataset/call_kw/${model}/${method}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "call", params: { model, method, args, kwargs } }),
    });
    const body = await response.json();
    if (body.error) {
        throw new Error(body.error.data.message);
    }
    return body.result;
}

/** A step that reads the transactions and checks them with `expect(rows)`. */
function checkDatabase(content, expect) {
    return {
        content,
        trigger: ".o_spp_handout",
        async run() {
            const rows = await callKw("spp.entitlement.transaction", "search_read", [
                [],
                ["code", "transaction_type", "amount", "quantity", "reference", "is_reversed"],
            ]);
            const problem = expect(rows);
            if (problem) {
                throw new Error(`${content}: ${problem} (${JSON.stringify(rows)})`);
            }
        },
    };
}

/** Ask the test to change the network (`cut`, `restore`) and wait until it has. */
function network(action, done) {
    return [
        {
            content: `Ask the test to ${action} the network`,
            trigger: ".o_spp_handout",
            run() {
                document.body.dataset.sppNetwork = `${action}-please`;
            },
        },
        { content: `The network is ${done}`, trigger: `body[data-spp-network=${done}]`, isCheck: true, timeout: 30000 },
    ];
}

const count = (rows, type) => rows.filter((r) => r.transaction_type === type).length;

registry.category("web_tour.tours").add("spp_handout_tour", {
    test: true,
    steps: () => [
        { content: "The handout screen opens at login", trigger: ".o_spp_handout_code", timeout: PAGE_LOAD },
        check(".o_spp_handout_point:has(option:selected:contains(Point A))", "The agent's only point is chosen"),
        check(".o_spp_handout_cache:contains(kept on the device)", "The point's list is on the device"),
        fill(".o_spp_handout_code", () => tourData().swapped, "Type a code with two characters swapped"),
        check(".o_spp_handout_code_error:contains(two are swapped)", "Refused as typed, before any call"),
        check(".o_spp_handout_find:disabled", "Find is disabled"),
        checkDatabase("Nothing was redeemed", (rows) => rows.length && "transactions exist"),
        fill(".o_spp_handout_code", () => tourData().rice.toLowerCase(), "Type the right code (lower case)"),
        { content: "Find the household", trigger: ".o_spp_handout_find:enabled" },
        check(".o_spp_handout_beneficiary:contains(House A1)", "The beneficiary is shown"),
        check(".o_spp_handout_id:contains(5678)", "The last digits of the ID number"),
        check(".o_spp_handout_line:contains(Rice) .o_spp_handout_balance:contains(10)", "Rice: 10 kg left"),
        check(".o_spp_handout_line:contains(Cash) .o_spp_handout_balance:contains(100)", "Cash: 100 left"),
        check(".o_spp_handout_household:not(:contains(pregnan)):not(:contains(disabilit))", "No health data"),
        fill(".o_spp_handout_line:contains(Rice) .o_spp_handout_quantity", "4", "Hand out 4 kg of rice only"),
        fill(".o_spp_handout_line:contains(Cash) .o_spp_handout_quantity", "30", "and 30 of the cash"),
        { content: "Collected by the alternate collector", trigger: "label:contains(Alternate collector: Ben A1)" },
        { content: "ID checked", trigger: ".o_spp_handout_id_checked" },
        {
            content: "Confirm (twice in a row: a double tap)",
            trigger: ".o_spp_handout_confirm:enabled",
            run() {
                this.$anchor[0].click();
                this.$anchor[0].click();
            },
        },
        check(".o_spp_handout_receipt .o_spp_handout_receipt_collector:contains(Ben A1)", "The receipt is shown"),
        check(".o_spp_handout_receipt_line:contains(Rice):contains(Left 6)", "6 kg of rice left"),
        check(".o_spp_handout_receipt_line:contains(Cash):contains(Left 70)", "70 of the cash left"),
        checkDatabase("Two redemptions, once", (rows) => {
            if (rows.length !== 2 || count(rows, "redemption") !== 2) {
                return "expected 2 redemptions";
            }
            const rice = rows.find((r) => r.code === tourData().rice);
            return (!rice || rice.quantity !== 4) && "4 kg of rice expected";
        }),
        { content: "Send the same confirmation again", trigger: ".o_spp_handout_send_again" },
        check(".o_spp_handout_receipt_line:contains(Rice):contains(Left 6)", "Same answer: 6 kg left"),
        checkDatabase("The retry added nothing", (rows) => rows.length !== 2 && "still 2 transactions expected"),
        { content: "Undo the last line (cash)", trigger: ".o_spp_handout_receipt_line:contains(Cash) .o_spp_handout_undo" },
        fill(".o_spp_handout_undo_reason", "Wrong amount", "Say why"),
        { content: "Confirm the undo", trigger: ".o_spp_handout_undo_confirm:enabled" },
        check(".o_spp_handout_receipt_line.o_spp_handout_undone:contains(Cash):contains(left 100)", "Undone: 100 left"),
        checkDatabase("One reversal", (rows) => count(rows, "reversal") !== 1 && "expected 1 reversal"),
        {
            content: "The receipt prints (the PDF answers)",
            trigger: ".o_spp_handout_pdf",
            async run() {
                const response = await fetch(this.$anchor[0].getAttribute("href"));
                const type = response.headers.get("Content-Type") || "";
                if (!response.ok || !type.includes("pdf")) {
                    throw new Error(`receipt PDF: ${response.status} ${type}`);
                }
            },
        },
        check(".o_spp_handout_print", "A print button for the screen's receipt"),
        { content: "Next person", trigger: ".o_spp_handout_next" },
        check(".o_spp_handout_code", "Ready for the next code"),
    ],
});

registry.category("web_tour.tours").add("spp_handout_offline_tour", {
    test: true,
    steps: () => [
        { content: "The handout screen opens", trigger: ".o_spp_handout_code", timeout: PAGE_LOAD },
        check(".o_spp_handout_cache:contains(kept on the device)", "The point's list is on the device"),
        ...network("cut", "cut"),
        fill(".o_spp_handout_code", () => tourData().rice, "Offline: type House A1's code"),
        { content: "Find it in the device's list", trigger: ".o_spp_handout_find:enabled" },
        check(".o_spp_handout_offline", "The screen says it is offline"),
        check(".o_spp_handout_beneficiary:contains(House A1)", "Found on the device"),
        {
            content: "Screenshot at phone width",
            trigger: ".o_spp_handout_line:contains(Rice)",
            run() {
                document.body.dataset.sppShot = "please";
            },
        },
        { content: "Screenshot taken", trigger: "body[data-spp-shot=done]", isCheck: true, timeout: 30000 },
        { content: "Confirm House A1's whole basket", trigger: ".o_spp_handout_confirm:enabled" },
        check(".o_spp_handout_receipt:contains(waiting to be sent)", "Queued"),
        check(".o_spp_handout_waiting:contains(1 waiting)", "One handout waits"),
        { content: "Next person", trigger: ".o_spp_handout_next" },
        fill(".o_spp_handout_code", () => tourData().cash_a2, "Type House A2's code"),
        { content: "Find it", trigger: ".o_spp_handout_find:enabled" },
        check(".o_spp_handout_line:contains(Cash) .o_spp_handout_balance:contains(100)", "The device still thinks 100"),
        { content: "Confirm", trigger: ".o_spp_handout_confirm:enabled" },
        check(".o_spp_handout_waiting:contains(2 waiting)", "Two handouts wait"),
        { content: "Next person", trigger: ".o_spp_handout_next" },
        ...network("restore", "restored"),
        // Back online: the screen sends what waits by itself (the browser's "online" event;
        // also every 30 s, and the "Send now" button).
        check(".o_spp_handout_refused:contains(House A2):contains(already handed out)", "The conflict is listed"),
        check(".o_spp_handout:not(:has(.o_spp_handout_waiting))", "Nothing waits any more"),
        checkDatabase("Every queued handout arrived once", (rows) => {
            const byCode = (code) => rows.filter((r) => r.code === code && r.transaction_type === "redemption");
            const data = tourData();
            return (
                (byCode(data.rice).length !== 1 && "one rice redemption") ||
                (byCode(data.cash_a1).length !== 1 && "one cash redemption for House A1") ||
                (byCode(data.cash_a2).length !== 1 && "only the redemption made elsewhere for House A2")
            );
        }),
    ],
});
