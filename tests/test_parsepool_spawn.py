"""Parser workers start under any main program, even one that cannot be imported twice (the `airflow` script).

Spawned workers re-run the parent's main script by default. In an Airflow task process that script imports
Airflow, whose set-up fails there (the metadata DB URL is blocked for tasks), so every worker died and every
document was quarantined as "the parser process crashed"; `dag.test()` inside pytest never showed it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
MAIN = '''
import sys
if __name__ != "__main__":  # what Airflow's set-up amounts to in a task process's spawned child
    raise RuntimeError("the main script was run again in a parser worker")
sys.path.insert(0, {plugins!r})
from pathlib import Path
from pagelens.pipeline.stages import index_batch
from pagelens.settings import Settings
from pagelens.sources.local import LocalSource

settings = Settings(data_dir=Path({data!r}), parse_workers=1)
documents = LocalSource(Path({source!r})).list_documents().documents
print(" ".join(f"{{r.doc}}={{r.status}}" for r in index_batch(documents, "spawn", settings)))
'''


def test_workers_do_not_rerun_a_main_script_that_fails_on_reimport(sample_docs: Path, tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text(MAIN.format(plugins=str(REPO / "plugins"), data=str(tmp_path / "data"),
                                  source=str(sample_docs / "warehouse_inspection_scan.png")))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["warehouse_inspection_scan.png=indexed"], done.stderr[-2000:]
