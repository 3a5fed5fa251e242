"""Vendor the Noto web fonts Parity serves, and write static/parity/fonts.css.

Parity draws every script of its demo (the 59 UDHR texts) and of its interface with fonts
it ships, so an evaluator's machine needs no fonts of its own. The faces come from the
`@fontsource/*` npm packages (Google Fonts' Noto, already split into `unicode-range`
subsets): a browser downloads only the subsets whose characters a page shows.

    python tools/vendor_fonts.py            # npm pack into a temporary folder, then vendor
    python tools/vendor_fonts.py --from DIR # DIR holds the unpacked packages, one folder each

Only weights 400 and 700 are kept (400 alone for the large CJK faces: browsers synthesise
bold), and only each package's own script subsets (Latin, Cyrillic and Greek come from
Noto Sans once). The result is committed, so `make demo` needs no npm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FONTS = ROOT / "static" / "parity" / "fonts"
CSS = ROOT / "static" / "parity" / "fonts.css"

CJK = ("noto-sans-sc", "noto-sans-jp", "noto-sans-kr", "noto-sans-tc")
# Package → the subsets Parity serves from it (None: its own script subsets).
PACKAGES: dict[str, list[str] | None] = {
    "noto-sans": [
        "latin",
        "latin-ext",
        "cyrillic",
        "cyrillic-ext",
        "greek",
        "greek-ext",
        "vietnamese",
    ],
    "noto-sans-arabic": None,
    "noto-sans-hebrew": None,
    "noto-sans-thaana": None,
    "noto-sans-syriac": None,
    "noto-sans-adlam": None,
    "noto-sans-devanagari": None,
    "noto-sans-bengali": None,
    "noto-sans-gurmukhi": None,
    "noto-sans-gujarati": None,
    "noto-sans-tamil": None,
    "noto-sans-telugu": None,
    "noto-sans-kannada": None,
    "noto-sans-malayalam": None,
    "noto-sans-sinhala": None,
    "noto-sans-ethiopic": None,
    "noto-sans-thai": None,
    "noto-sans-lao": None,
    "noto-sans-khmer": None,
    "noto-sans-myanmar": None,
    "noto-serif-tibetan": None,
    "noto-sans-georgian": None,
    "noto-sans-armenian": None,
    "noto-sans-cherokee": None,
    "noto-sans-canadian-aboriginal": None,
    "noto-sans-vai": None,
    "noto-sans-yi": None,
    "noto-sans-tifinagh": None,
    **{name: None for name in CJK},
}
# Subsets another package already serves, or that Parity does not need.
SHARED_SUBSETS = {
    "latin",
    "latin-ext",
    "cyrillic",
    "cyrillic-ext",
    "greek",
    "greek-ext",
    "vietnamese",
    "math",
    "symbols",
}
WEIGHTS = (400, 700)

# The default stack: Noto Sans for Latin, Greek and Cyrillic, then one face per script
# (unicode-range keeps the browser from downloading any face a page does not use).
# Simplified Chinese leads the CJK faces for text without a language tag.
_SCRIPTS = [
    "Noto Sans Arabic",
    "Noto Sans Hebrew",
    "Noto Sans Thaana",
    "Noto Sans Syriac",
    "Noto Sans Adlam",
    "Noto Sans Devanagari",
    "Noto Sans Bengali",
    "Noto Sans Gurmukhi",
    "Noto Sans Gujarati",
    "Noto Sans Tamil",
    "Noto Sans Telugu",
    "Noto Sans Kannada",
    "Noto Sans Malayalam",
    "Noto Sans Sinhala",
    "Noto Sans Ethiopic",
    "Noto Sans Thai",
    "Noto Sans Lao",
    "Noto Sans Khmer",
    "Noto Sans Myanmar",
    "Noto Serif Tibetan",
    "Noto Sans Georgian",
    "Noto Sans Armenian",
    "Noto Sans Cherokee",
    "Noto Sans Canadian Aboriginal",
    "Noto Sans Vai",
    "Noto Sans Yi",
    "Noto Sans Tifinagh",
]
_CJK_ORDER = {
    "sc": ["Noto Sans SC", "Noto Sans TC", "Noto Sans JP", "Noto Sans KR"],
    "tc": ["Noto Sans TC", "Noto Sans SC", "Noto Sans JP", "Noto Sans KR"],
    "jp": ["Noto Sans JP", "Noto Sans SC", "Noto Sans TC", "Noto Sans KR"],
    "kr": ["Noto Sans KR", "Noto Sans SC", "Noto Sans TC", "Noto Sans JP"],
}
_TAIL = ["system-ui", "sans-serif"]
# Han characters take different forms in each CJK language: each language tag picks its face.
# Later rules win over `zh` for the Traditional tags (same specificity, later in the file).
LANG_RULES = [
    ("jp", [":lang(ja)"]),
    ("kr", [":lang(ko)"]),
    ("sc", [":lang(zh)", ":lang(zh-Hans)"]),
    ("tc", [":lang(zh-Hant)", ":lang(zh-TW)", ":lang(zh-HK)", ":lang(zh-MO)", ":lang(yue)"]),
]


def _stack(cjk: str) -> str:
    return ", ".join(
        f'"{name}"' if " " in name else name
        for name in ["Noto Sans", *_SCRIPTS, *_CJK_ORDER[cjk], *_TAIL]
    )


def _pack(names: list[str], into: Path) -> None:
    subprocess.run(
        ["npm", "pack", "--silent", *[f"@fontsource/{n}" for n in names]],
        cwd=into,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    for tgz in into.glob("fontsource-*.tgz"):
        name = next(
            n
            for n in sorted(names, key=len, reverse=True)
            if tgz.name.startswith(f"fontsource-{n}-")
        )
        target = into / name
        target.mkdir()
        with tarfile.open(tgz) as archive:
            for member in archive.getmembers():
                member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
                if member.name:
                    archive.extract(member, target, filter="data")


def _licence(package: Path) -> str:
    licence = package / "LICENSE"
    if licence.is_file():
        return licence.read_text(encoding="utf-8")
    # @fontsource/noto-sans-yi (4.5.x) ships no licence file; Noto Sans Yi is under the OFL
    # 1.1 like every Noto face (https://fonts.google.com/attribution): carry the OFL text
    # from another Noto package with the face's own copyright line.
    ofl = (
        (package.parent / "noto-sans-vai" / "LICENSE").read_text(encoding="utf-8").split("\n", 1)[1]
    )
    return "Copyright 2012 Google Inc. All Rights Reserved. (Noto Sans Yi)\n" + ofl


def vendor(source: Path) -> int:
    if FONTS.exists():
        shutil.rmtree(FONTS)
    rules: list[str] = []
    total = 0
    for name, wanted in PACKAGES.items():
        package = source / name
        meta = json.loads((package / "metadata.json").read_text(encoding="utf-8"))
        ranges: dict[str, str] = json.loads((package / "unicode.json").read_text(encoding="utf-8"))
        subsets = wanted or [s for s in ranges if s not in SHARED_SUBSETS]
        weights = [w for w in ((400,) if name in CJK else WEIGHTS) if w in meta["weights"]]
        out = FONTS / name
        out.mkdir(parents=True)
        (out / "LICENSE").write_text(_licence(package), encoding="utf-8")
        for subset in subsets:
            for weight in weights:
                file = f"{name}-{subset.strip('[]')}-{weight}-normal.woff2"
                shutil.copyfile(package / "files" / file, out / file)
                total += (out / file).stat().st_size
                rules.append(
                    "@font-face{"
                    f'font-family:"{meta.get("fontName") or meta["family"]}";font-style:normal;font-display:swap;font-weight:{weight};'
                    f'src:url("fonts/{name}/{file}") format("woff2");unicode-range:{ranges[subset]}'
                    "}"
                )
    lines = [
        "/* Generated by tools/vendor_fonts.py from the @fontsource packages: do not edit by hand. */",
        *rules,
        ":root{"
        + "".join(f"--font-{key}:{_stack(key)};" for key in _CJK_ORDER)
        + "--font-sans:var(--font-sc)}",
        # :where() keeps these at zero specificity: monospace rules (kbd, code editors) still win.
        *(
            f":where({', '.join(selectors)}){{font-family:var(--font-{key})}}"
            for key, selectors in LANG_RULES
        ),
    ]
    CSS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--from", dest="source", type=Path, help="folder with the unpacked @fontsource packages"
    )
    args = parser.parse_args()
    if args.source:
        total = vendor(args.source)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _pack(list(PACKAGES), Path(tmp))
            total = vendor(Path(tmp))
    files = sum(1 for _ in FONTS.rglob("*.woff2"))
    print(
        f"{files} woff2 files, {total:,} bytes, in {FONTS.relative_to(ROOT)}; wrote {CSS.relative_to(ROOT)}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
