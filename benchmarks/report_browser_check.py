"""Render a report.html in headless Chromium and check that its tables and images are there and decoded.

    python benchmarks/report_browser_check.py REPORT.html [--screenshot OUT.png] [--min-tables N]
    python benchmarks/report_browser_check.py --build   # builds a small report from a tiny trained run first

Prints one JSON object: tables, images, images decoded (naturalWidth > 0), external references, the
screenshot path and whether it is blank, and "ok". Exit 0 when ok; 1 when a check fails; prints
{"skipped": reason} and exits 0 when no chromium is installed.

How: a copy of the page gets a small inline script that, after `load`, writes its findings into a
<pre id="samplecnn-check"> element; Chromium's --dump-dom prints the DOM after load, which we parse.
The report itself holds no script. The page is opened from a file:// URL with networking disabled.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=10000"]
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {tables: document.querySelectorAll('table').length,
             table_rows: document.querySelectorAll('tbody tr').length,
             images: imgs.length,
             decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             widths: imgs.map(function (i) { return i.naturalWidth; }),
             title: document.title};
  var pre = document.createElement('pre'); pre.id = 'samplecnn-check';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, args: list[str], profile: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=timeout)


def screenshot_is_blank(path: Path) -> bool:
    """True when every pixel of the screenshot has the same colour."""
    import numpy as np
    from matplotlib.image import imread

    pixels = imread(str(path))
    return bool(np.all(pixels == pixels[0, 0]))


def check_report(html_path: Path, screenshot: Path | None = None, browser: str | None = None,
                 timeout: float = 120.0) -> dict:
    """Render `html_path` in headless Chromium; return the findings (see the module docstring)."""
    browser = browser or find_chromium()
    if browser is None:
        return {"skipped": "no chromium on PATH (Debian: apt-get install chromium)"}
    html_path = Path(html_path).resolve()
    text = html_path.read_text()
    external = sorted(set(re.findall(r"""(?:src|href)=["'](https?:|//)[^"']*""", text)))
    with tempfile.TemporaryDirectory(prefix="samplecnn-browser-") as tmp:
        tmp = Path(tmp)
        probe_page = tmp / "probe.html"
        probe_page.write_text(text.replace("</body>", PROBE + "</body>", 1))
        dom = _run(browser, ["--dump-dom", probe_page.as_uri()], tmp / "profile-dom", timeout)
        match = re.search(r'<pre id="samplecnn-check">(.*?)</pre>', dom.stdout, re.S)
        findings = json.loads(match.group(1).replace("&quot;", '"')) if match else {}
        result = {"html": str(html_path), "browser": browser, "rendered": bool(match), **findings,
                  "external_references": len(external)}
        if not match:
            result["browser_stderr"] = dom.stderr[-2000:]
        if screenshot is not None:
            screenshot = Path(screenshot).resolve()
            shot = _run(browser, [f"--screenshot={screenshot}", "--window-size=1280,2400", html_path.as_uri()],
                        tmp / "profile-shot", timeout)
            result["screenshot"] = str(screenshot)
            result["screenshot_written"] = screenshot.is_file()
            result["screenshot_blank"] = screenshot_is_blank(screenshot) if screenshot.is_file() else None
            if not screenshot.is_file():
                result["browser_stderr"] = shot.stderr[-2000:]
    result["ok"] = bool(result["rendered"] and result.get("tables", 0) > 0 and result.get("images", 0) > 0
                        and result.get("decoded") == result.get("images") and not external
                        and result.get("screenshot_blank") in (None, False))
    return result


def build_demo_report(folder: Path) -> Path:
    """A tiny trained run (synthetic tones), evaluated, its filters visualised, and a report of it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from samplecnn_cli.inference.evaluate import evaluate_run
    from samplecnn_cli.report.build import build_report
    from samplecnn_cli.training.trainer import train
    from samplecnn_cli.viz.visualize import visualize_run
    from tests._store_fixtures import make_store

    store = make_store(folder / "store", task="multilabel")
    run = train(model="sample-3^5", data=store, out=folder / "run", epochs=2, batch_size=16)
    evaluate_run(run)
    visualize_run(run, "1-2", svg=False)
    build_report([run], folder / "report", title="Browser check")
    return folder / "report" / "report.html"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", type=Path, help="report.html to check")
    parser.add_argument("--build", action="store_true", help="build a small report first (needs ~1 minute)")
    parser.add_argument("--screenshot", type=Path, default=None, help="where to write the screenshot PNG")
    parser.add_argument("--work", type=Path, default=None, help="folder for --build (default: a temp folder)")
    args = parser.parse_args()
    if find_chromium() is None:
        print(json.dumps({"skipped": "no chromium on PATH (Debian: apt-get install chromium)"}))
        return 0
    html_path = args.html
    if args.build:
        work = args.work or Path(tempfile.mkdtemp(prefix="samplecnn-report-"))
        html_path = build_demo_report(work)
    if html_path is None:
        parser.error("give REPORT.html or --build")
    screenshot = args.screenshot or html_path.with_name("screenshot.png")
    result = check_report(html_path, screenshot)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
