"""The ctypes declarations in ktq/_lib.py against the installed header, as
the C compiler sees it: every struct's size, every field's offset and size."""
import ctypes
import os
import shutil
import subprocess

import pytest

from ktq import _lib


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_struct_layouts_match_the_header(tmp_path):
    cflags = subprocess.run(["pkg-config", "--cflags", "ktq"], capture_output=True, text=True, check=True).stdout.split()
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <ktq/ktq.h>", "int main(void) {"]
    expected = []
    for cname, struct in _lib.STRUCTS.items():
        lines.append(f'  printf("%zu\\n", sizeof({cname}));')
        expected.append((f"sizeof {cname}", ctypes.sizeof(struct)))
        for field, _ in struct._fields_:
            lines.append(f'  printf("%zu\\n", offsetof({cname}, {field}));')
            expected.append((f"offsetof {cname}.{field}", getattr(struct, field).offset))
            # the field's own size: a pointer declared as an int in the last field moves no offset
            lines.append(f'  printf("%zu\\n", sizeof((({cname} *)0)->{field}));')
            expected.append((f"sizeof {cname}.{field}", getattr(struct, field).size))
    lines += ["  return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", str(src), *cflags, "-o", str(tmp_path / "layout")], check=True)
    got = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True, check=True).stdout.split()
    mismatches = [(n, e, int(g)) for (n, e), g in zip(expected, got) if e != int(g)]
    assert not mismatches, mismatches
    assert len(got) == len(expected)
