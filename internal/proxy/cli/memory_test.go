package cli

import "testing"

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: "512B", want: 512},
		{in: "24MiB", want: 24 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "64KiB", want: 64 << 10},
		{in: "30MB", want: 30e6},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1MiB", wantErr: true},
		{in: "1.5MiB", wantErr: true},
		{in: "12XB", wantErr: true},
		{in: "12 MiB", wantErr: true},
		{in: "99999999999TiB", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseBytes(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMemoryFlagsRejectNegativeGCPercent(t *testing.T) {
	if err := (&memoryFlags{gcPercent: -5}).apply(); err == nil {
		t.Fatal("negative --gc-percent accepted")
	}
	if err := (&memoryFlags{limit: "lots"}).apply(); err == nil {
		t.Fatal("--memory-limit lots accepted")
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"24MiB", "0", "1GB", "12XB", "-1", "9223372036854775807B", "99999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseBytes(s)
		if err == nil && n < 0 {
			t.Fatalf("parseBytes(%q) = %d: negative", s, n)
		}
	})
}
