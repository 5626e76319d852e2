// Package pageout gives back the resident pages of the proxy's own
// executable that it touched at start-up and does not need while idle.
//
// A sidecar's biggest share of resident memory is its binary: starting up
// (protobuf registration of the generated xDS types reads their descriptors;
// the kernel maps 64 KiB around every page fault) leaves ~14 MB of the
// executable's text and read-only data resident, of which an idle proxy
// touches ~2 MB. Executable asks the kernel (madvise MADV_PAGEOUT, Linux 5.4+)
// to reclaim the pages of the executable's read-only mappings that this
// process alone maps; the pages it needs again come back on the next touch,
// from the page cache or the file. Writable mappings are left alone.
package pageout

// Result is what Executable did.
type Result struct {
	// Mappings and Bytes count the read-only mappings of the executable
	// advised, and their size.
	Mappings int
	Bytes    uint64
}
