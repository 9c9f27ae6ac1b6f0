/** @odoo-module **/
// A progress bar that reloads its record every 2 s while the import runs (state "running"):
// the import's job writes its progress on a transaction of its own.
import {onMounted, onWillUnmount} from "@odoo/owl";
import {
    ProgressBarField,
    progressBarField,
} from "@web/views/fields/progress_bar/progress_bar_field";
import {registry} from "@web/core/registry";

export class ImportProgressField extends ProgressBarField {
    setup() {
        super.setup();
        onMounted(() => {
            this.timer = setInterval(() => {
                const record = this.props.record;
                if (record.data.state === "running" && !record.dirty) {
                    record.load();
                }
            }, 2000);
        });
        onWillUnmount(() => clearInterval(this.timer));
    }
}

registry.category("fields").add("g2p_import_progress", {
    ...progressBarField,
    component: ImportProgressField,
});
