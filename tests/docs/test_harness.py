"""The example harness itself: directives, commands, expected output and its ``...`` elision."""

from __future__ import annotations

from pathlib import Path

from tests.docs import examples
from tests.docs.examples import Block, output_matches, screen


def _parse(tmp_path: Path, text: str) -> list[Block]:
    page = tmp_path / "probe.md"
    page.write_text(text, encoding="utf-8")
    return examples.parse(page)


def test_blocks_directives_and_commands(tmp_path: Path) -> None:
    blocks = _parse(tmp_path, """# t

```text
not run
```

<!-- skip: needs a GPU -->
```bash
nvidia-smi
```

<!-- setup: labelled-folder my_data -->
<!-- exit: 2 -->
```console
$ unibind extract my_data/m.parquet \\
>   --profile nope
error: unknown profile 'nope'; ...

$ echo done
done
```

<!-- exit: 1 -->

Text between a directive and a fence cancels the directive.

```python
print(1)
```
""")
    assert [b.lang for b in blocks] == ["bash", "console", "python"]
    assert blocks[0].skip == "needs a GPU"
    console = blocks[1]
    assert console.exit == 2 and console.setups == [["labelled-folder", "my_data"]]
    commands = console.commands()
    assert [c.text for c in commands] == ["unibind extract my_data/m.parquet  --profile nope",
                                          "echo done"]
    assert commands[0].expected == ["error: unknown profile 'nope'; ..."]
    assert blocks[2].exit == 0 and blocks[2].skip is None


def test_output_elision() -> None:
    out = "log 1\nrank score\n   1 0.5 image dog /x/0.png\n   2 0.4 image dog /x/1.png\nlog 2\n"
    assert output_matches(["rank score", "   1 ... image dog ...", "..."], out)
    assert output_matches(["rank score", "...", "   2 0.4 image ..."], out)
    assert not output_matches(["rank score", "   2 0.4 image ..."], out)  # lines are contiguous
    assert not output_matches(["   1 0.9 ..."], out)


def test_screen_reads_output_as_a_terminal_shows_it() -> None:
    bars = "extract:  50%|##   |\rextract: 100%|#####|\r" + " " * 20 + "\rtext: 3 computed\n"
    assert screen(bars) == "text: 3 computed\n"
    assert screen("a\r\nb  \n\n") == "a\nb\n"
