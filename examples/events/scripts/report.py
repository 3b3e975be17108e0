import os

import cronium

rows = cronium.input() or []
previous = cronium.getVariable("LAST_REPORT_COUNT")
print(f"{len(rows)} rows for {os.environ['REPORT_DAY']} (previous run: {previous})")
cronium.setVariable("LAST_REPORT_COUNT", len(rows))
cronium.output({"count": len(rows), "previous": previous, "run": cronium.event()["run_id"]})
cronium.setCondition(len(rows) > 100)
