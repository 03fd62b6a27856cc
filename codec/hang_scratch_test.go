package codec

import (
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHangScratch(t *testing.T) {
	dir := os.Getenv("HOME") + "/.cache/go-build/fuzz/github.com/webinate/broker/codec/"
	var seeds [][]byte
	for _, fz := range []string{"FuzzClassify", "FuzzSplitPublish"} {
		files, _ := filepath.Glob(dir + fz + "/*")
		for _, f := range files {
			data, _ := os.ReadFile(f)
			lines := strings.SplitN(string(data), "\n", 2)
			v := strings.TrimSpace(lines[1])
			v = strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")")
			s, err := strconv.Unquote(v)
			if err == nil {
				seeds = append(seeds, []byte(s))
			}
		}
	}
	t.Logf("%d seeds", len(seeds))
	r := rand.New(rand.NewSource(1))
	deadline := time.Now().Add(15 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		b := append([]byte(nil), seeds[r.Intn(len(seeds))]...)
		for k := r.Intn(4); k >= 0 && len(b) > 0; k-- {
			switch r.Intn(3) {
			case 0:
				b[r.Intn(len(b))] = byte(r.Intn(256))
			case 1:
				i := r.Intn(len(b))
				b = append(b[:i], b[i+1:]...)
			case 2:
				i := r.Intn(len(b) + 1)
				b = append(b[:i], append([]byte{"{}[]\"\\,:0-e."[r.Intn(12)]}, b[i:]...)...)
			}
		}
		for i, f := range []func([]byte){
			func(b []byte) { PeekEventType(b) },
			func(b []byte) { ClassifyClient(b) },
			func(b []byte) { SplitPublish(b) },
			func(b []byte) { refClassify(b, true) },
			func(b []byte) { refSplit(b) },
		} {
			done := make(chan struct{})
			go func() { f(b); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatalf("func %d hangs on %q", i, b)
			}
		}
		n++
	}
	t.Logf("%d inputs", n)
}
