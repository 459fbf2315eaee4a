"""DVC stage `report`: stitch the section pages into reports/report.md."""

from midiml.io import write_text
from midiml.report.build import build_report

if __name__ == "__main__":
    write_text("reports/report.md", build_report("reports"))
    print("report: reports/report.md")
