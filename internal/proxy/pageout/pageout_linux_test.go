package pageout

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := []byte(`00400000-00b00000 r-xp 00000000 08:01 123 /usr/bin/mast-proxy
00b00000-01400000 r--p 00700000 08:01 123 /usr/bin/mast-proxy
01400000-01480000 rw-p 01000000 08:01 123 /usr/bin/mast-proxy
01480000-014c0000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--p 00000000 08:01 999 /usr/bin/mast-proxy.old
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
`)
	got := readOnlyMappings(maps, "/usr/bin/mast-proxy")
	want := []mapping{{0x400000, 0xb00000}, {0xb00000, 0x1400000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %#v, want %#v", got, want)
	}
}

// rssFile is the process's file-backed resident memory in KiB.
func rssFile(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no RssFile")
	return 0
}

// TestExecutable: the test binary's read-only mappings are advised and its
// file-backed resident memory drops (the test binary is mapped by this
// process alone), and the process keeps running what it pages out.
func TestExecutable(t *testing.T) {
	before := rssFile(t)
	res, err := Executable()
	if err != nil {
		t.Skipf("madvise(MADV_PAGEOUT) unavailable here (Linux 5.4+): %v", err)
	}
	if res.Mappings < 2 || res.Bytes == 0 {
		t.Fatalf("advised %+v; want the text and read-only data mappings", res)
	}
	after := rssFile(t)
	if after >= before {
		t.Errorf("RssFile %d KiB before, %d KiB after paging out", before, after)
	}
	t.Logf("RssFile %d -> %d KiB (%d bytes advised)", before, after, res.Bytes)
}
