/** @odoo-module **/
/*
 * The back-office flow of a distribution, one tour per role (run by
 * spp_entitlement_in_kind/tests/test_tour.py, which checks the database after each):
 * a manager creates a program with the wizard, an officer enrolls, creates a cycle,
 * prepares and submits it, an approver approves the cycle, a validator approves the
 * entitlements from the list and rejects one with a reason, an officer prints vouchers,
 * then the guide's loop in the approved cycle: the officer resets the rejected one to
 * draft, corrects its quantity, adds a note and submits it; a validator approves it.
 */
import { registry } from "@web/core/registry";

const PROGRAM = "Tour food basket";

/** The first step of each tour waits for the web client to open the page the test starts
 * the tour at (test_tour.py gives each tour its action's url; the tours name none, so
 * Odoo never redirects them): on a machine busy with other work, e.g. load tests, that
 * can take longer than a step's default 10 s. */
const PAGE_LOAD = 60000;

/** Set an input's value as a user would, then commit it (input + change events). */
function fill(trigger, value, content) {
    return {
        content: content || `Fill ${trigger}`,
        trigger,
        run() {
            const el = this.$anchor[0];
            el.value = value;
            el.dispatchEvent(new Event("input", { bubbles: true }));
            el.dispatchEvent(new Event("change", { bubbles: true }));
        },
    };
}

/** A step that only waits for ``trigger`` (disabled elements too, e.g. the current state). */
const check = (trigger, content) => ({ content, trigger, isCheck: true });

/** The record's state is ``label``, whether the status bar shows all its states or,
 * on a narrow screen with many buttons, folds them into a dropdown. */
const stateIs = (label) =>
    check(
        `.o_statusbar_status .o_arrow_button_current:contains("${label}"), ` +
            `.o_statusbar_status .dropdown-toggle:contains("${label}")`,
        `The state is ${label}`
    );

registry.category("web_tour.tours").add("g2p_tour_manager_creates_program", {
    test: true,
    steps: () => [
        {
            content: "Open the Programs menu",
            trigger: '.o_main_navbar [data-menu-xmlid="g2p_programs_ext.g2p_programs_menu"]',
            timeout: PAGE_LOAD,
        },
        {
            content: "Create program",
            trigger: '.dropdown-item[data-menu-xmlid="g2p_programs_ext.g2p_program_create_wizard_menu"]',
        },
        fill("div[name=name] input", PROGRAM, "Name the program"),
        check("div[name=eligibility_domain] .o_domain_selector", "The domain editor is shown"),
        check("div[name=eligible_count]:contains(4)", "Four households match before the expression"),
        fill(
            "div[name=eligibility_expression] textarea",
            "me.household_size >",
            "A wrong CEL expression"
        ),
        check(".alert-warning:contains(invalid_expression)", "The parser's message is shown"),
        fill(
            "div[name=eligibility_expression] textarea",
            "me.household_size >= 2",
            "Households of two or more"
        ),
        check("div[name=eligible_count]:contains(3)", "The live count follows the expression"),
        { content: "In-kind goods", trigger: '.nav-link:contains("In-kind goods")' },
        {
            content: "Add an item",
            trigger: "div[name=inkind_item_ids] .o_field_x2many_list_row_add a",
        },
        {
            content: "Choose the product",
            trigger: "div[name=inkind_item_ids] .o_data_row div[name=product_id] input",
            run: "text Rice",
        },
        {
            content: "Pick Rice",
            trigger: '.o-autocomplete--dropdown-menu .o-autocomplete--dropdown-item a:contains("Rice")',
        },
        fill("div[name=inkind_item_ids] .o_data_row div[name=quantity] input", "5", "5 kg each"),
        {
            content: "Create the program",
            trigger: ".modal-footer button[name=action_create_program]",
        },
        check(`.o_form_view .o_breadcrumb:contains("${PROGRAM}")`, "The new program opens"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_officer_prepares_cycle", {
    test: true,
    steps: () => [
        {
            content: "Open the program",
            trigger: `.o_data_row td:contains("${PROGRAM}")`,
            timeout: PAGE_LOAD,
        },
        { content: "Enroll", trigger: ".o_form_view button[name=enroll_eligible_registrants]" },
        check(
            ".o_form_view button[name=action_open_beneficiaries] .o_stat_value:contains(3)",
            "Three households enrolled"
        ),
        { content: "New cycle", trigger: ".o_form_view button[name=create_new_cycle]" },
        {
            content: "Open the cycles",
            trigger: ".o_form_view button[name=action_open_cycles]:has(.o_stat_value:contains(1))",
        },
        { content: "Open the cycle", trigger: `.o_data_row td:contains("${PROGRAM}")` },
        { content: "Prepare entitlements", trigger: ".o_form_view button[name=prepare_entitlement]" },
        { content: "Submit for approval", trigger: ".o_form_view button[name=to_approve]" },
        stateIs("To approve"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_approver_approves_cycle", {
    test: true,
    steps: () => [
        {
            content: "Open the cycle",
            trigger: `.o_data_row td:contains("${PROGRAM}")`,
            timeout: PAGE_LOAD,
        },
        { content: "Approve the cycle", trigger: ".o_form_view button[name=approve]" },
        stateIs("Approved"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_validator_approves_and_rejects", {
    test: true,
    steps: () => [
        { ...check('.o_data_row:contains("Pending validation")', "Entitlements to validate"), timeout: PAGE_LOAD },
        { content: "Select them all", trigger: "thead .o_list_record_selector input" },
        { content: "Action", trigger: ".o_cp_action_menus .dropdown-toggle:has(.fa-cog)" },
        { content: "Approve", trigger: '.o-dropdown--menu .dropdown-item:contains("Approve")' },
        check(
            '.o_list_renderer:not(:has(.o_data_row:contains("Pending validation"))):has(.o_data_row:contains("Approved"))',
            "All approved"
        ),
        { content: "Open H1's entitlement", trigger: '.o_data_row:contains("H1") td[name=partner_id]' },
        { content: "Reject", trigger: '.o_form_view .o_statusbar_buttons button:contains("Reject")' },
        {
            content: "Reason: other",
            trigger: "div[name=rejection_reason] select",
            run() {
                const select = this.$anchor[0];
                select.value = JSON.stringify("other");
                select.dispatchEvent(new Event("change", { bubbles: true }));
            },
        },
        fill("div[name=rejection_note] textarea", "Moved away", "Why"),
        { content: "Confirm", trigger: ".modal-footer button[name=action_confirm]" },
        stateIs("Rejected"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_officer_prints_vouchers", {
    test: true,
    steps: () => [
        {
            content: "Catch the report download (a headless browser keeps no file)",
            trigger: '.o_data_row:contains("Approved")',
            timeout: PAGE_LOAD,
            run() {
                const { download } = odoo.loader.modules.get("@web/core/network/download");
                download._download = async (options) => {
                    const data = new FormData();
                    for (const [key, value] of Object.entries(options.data)) {
                        data.append(key, value);
                    }
                    data.append("token", "dummy-because-api-expects-one");
                    data.append("csrf_token", odoo.csrf_token);
                    const response = await fetch(options.url, { method: "POST", body: data });
                    const body = await response.text();
                    const type = response.headers.get("Content-Type") || "";
                    if (response.ok && type.includes("pdf") && body.includes("o_g2p_voucher")) {
                        document.body.dataset.g2pVouchers = String(body.split("o_g2p_voucher").length - 1);
                    } else {
                        console.error(`Voucher download failed: ${response.status} ${type} ${body.slice(0, 500)}`);
                    }
                };
            },
        },
        { content: "Select them all", trigger: "thead .o_list_record_selector input" },
        { content: "Print", trigger: ".o_cp_action_menus .dropdown-toggle:has(.fa-print)" },
        { content: "Vouchers", trigger: '.o-dropdown--menu .dropdown-item:contains("Vouchers")' },
        check('body[data-g2p-vouchers="2"]', "Two vouchers: H3 and H4 (H1's only entitlement was rejected)"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_officer_corrects_and_resubmits", {
    test: true,
    steps: () => [
        {
            content: "Open H1's rejected entitlement",
            trigger: '.o_data_row:contains("H1"):contains("Rejected") td[name=partner_id]',
            timeout: PAGE_LOAD,
        },
        stateIs("Rejected"),
        { content: "Reset to draft", trigger: ".o_form_view .o_statusbar_buttons button[name=action_reset_to_draft]" },
        stateIs("Draft"),
        fill("div[name=quantity] input", "4", "Correct the quantity to 4 kg"),
        fill("div[name=note] textarea", "One member moved away", "Say why"),
        { content: "Submit for approval (saves first)", trigger: ".o_form_view button[name=action_submit]" },
        stateIs("Pending validation"),
        check("div[name=submitted_by_id]:contains(g2p_officer)", "Submitted by the officer"),
    ],
});

registry.category("web_tour.tours").add("g2p_tour_validator_approves_resubmitted", {
    test: true,
    steps: () => [
        {
            content: "Open H1's entitlement, pending again",
            trigger: '.o_data_row:contains("H1"):contains("Pending validation") td[name=partner_id]',
            timeout: PAGE_LOAD,
        },
        check("div[name=correction_ids] .o_data_row:contains(Quantity)", "The correction is listed"),
        { content: "Approve", trigger: ".o_form_view .o_statusbar_buttons button[name=approve_entitlement]" },
        stateIs("Approved"),
    ],
});
