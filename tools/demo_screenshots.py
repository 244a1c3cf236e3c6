"""Screenshots of the console as a newcomer sees it: the demo tenant of a running `make up`.

    make up                                   # in one terminal; wait a few minutes
    .venv/bin/python tools/demo_screenshots.py [--base http://demo.localhost:8000]

Signs in as the admin of `make up` (password from .beastflow/admin_password),
opens the overview and every demo source in Debian's chromium, and writes
docs/screenshots/demo-overview.png and demo-<source>.png.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP *.localhost 127.0.0.1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="http://demo.localhost:8000", help="the console URL `make up` printed")
    parser.add_argument("--state", default=str(ROOT / ".beastflow"), help="the state folder of that `make up`")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    password = (Path(args.state) / "admin_password").read_text().strip()
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{args.base}/login/?next=/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.wait_for_timeout(2500)  # the live socket's first snapshot
        page.screenshot(path=str(OUT / "demo-overview.png"), full_page=True)
        hrefs = page.eval_on_selector_all("a[href^='/sources/']", "els => els.map(e => e.getAttribute('href'))")
        for href in sorted({h for h in hrefs if re.fullmatch(r"/sources/\d+/", h)}):
            page.goto(f"{args.base}{href}")
            page.wait_for_timeout(1500)
            name = re.sub(r"[^a-z0-9-]", "", page.inner_text("h1").split()[0].lower())
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
        browser.close()
    print(f"written {OUT}/demo-*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
