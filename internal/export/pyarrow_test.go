package export_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
)

// checkWithPyArrow is run by pyarrow, an independent Parquet reader: for
// every file of the manifest it checks the SHA-256 and size, the row
// count, the offsets, the column types and, on order-events, that the typed
// columns hold what the JSON payload does. It prints OK and the rows read.
const checkWithPyArrow = `
import hashlib, json, sys
import pyarrow as pa, pyarrow.parquet as pq

root = sys.argv[1]
m = json.load(open(root + "/manifest.json"))
want = {
    "topic": pa.string(), "record_partition": pa.int32(), "record_offset": pa.int64(), "key": pa.string(),
    "published_at": pa.timestamp("ms", tz="UTC"), "event_id": pa.string(), "event_type": pa.string(),
    "event_version": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"), "source": pa.string(),
    "correlation_id": pa.string(), "causation_id": pa.string(), "user_id": pa.string(), "session_id": pa.string(),
}
rows = 0
typed = 0
for f in m["files"]:
    path = root + "/" + f["path"]
    content = open(path, "rb").read()
    assert hashlib.sha256(content).hexdigest() == f["sha256"], ("sha256", path)
    assert len(content) == f["bytes"], ("bytes", path)
    t = pq.read_table(path)
    assert t.num_rows == f["rows"], ("rows", path, t.num_rows, f["rows"])
    for name, typ in want.items():
        assert t.schema.field(name).type == typ, (path, name, str(t.schema.field(name).type))
    data = t.schema.field("data").type
    assert str(data) in ("extension<arrow.json>", "string", "large_string"), ("data", str(data))
    offsets = t.column("record_offset").to_pylist()
    assert offsets[0] == f["firstOffset"] and offsets[-1] == f["lastOffset"] and offsets == sorted(offsets), ("offsets", path)
    assert set(t.column("record_partition").to_pylist()) == {f["partition"]}
    assert set(t.column("topic").to_pylist()) == {f["topic"]}
    if f["topic"] == "order-events":
        assert t.schema.field("data_total_cents").type == pa.int64()
        assert t.schema.field("data_placed_at").type == pa.timestamp("us", tz="UTC")
        payloads = [json.loads(str(d)) for d in t.column("data").to_pylist()]
        for typ, total, currency, payload in zip(t.column("event_type").to_pylist(), t.column("data_total_cents").to_pylist(),
                                                   t.column("data_currency").to_pylist(), payloads):
            assert total == payload.get("totalCents") and currency == payload.get("currency"), (typ, total, payload)
            if typ == "OrderCreated":
                typed += 1
    rows += t.num_rows
assert rows == sum(f["rows"] for f in m["files"])
assert typed > 0
print("OK", rows)
`

// TestParquetReadByPyArrow has pyarrow, installed from PyPI into a
// temporary virtual environment, read every exported file. Without
// python3 it is skipped, except under CI, where it must run.
func TestParquetReadByPyArrow(t *testing.T) {
	if testing.Short() {
		t.Skip("installs pyarrow")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is required under CI to check the Parquet files with pyarrow")
		}
		t.Skip("no python3: the Parquet files are not checked by an independent reader")
	}
	b := exporttest.OpenBus(t)
	exporttest.Seed(t, b, 400, 30*time.Second)
	dir := filepath.Join(t.TempDir(), "x")
	res := run(t, b, dir, "parquet", export.Selection{Topics: businessTopics})

	venv := filepath.Join(t.TempDir(), "venv")
	for _, cmd := range [][]string{
		{python, "-m", "venv", venv},
		{filepath.Join(venv, "bin", "pip"), "install", "--quiet", "--disable-pip-version-check", "pyarrow"},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	out, err := exec.Command(filepath.Join(venv, "bin", "python"), "-c", checkWithPyArrow, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow disagrees with the manifest: %v\n%s", err, out)
	}
	if want := "OK " + strconv.FormatInt(res.Manifest.Rows(), 10); strings.TrimSpace(string(out)) != want {
		t.Fatalf("pyarrow said %q, want %q", out, want)
	}
}
