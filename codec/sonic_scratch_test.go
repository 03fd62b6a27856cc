package codec

import (
	"fmt"
	"testing"

	"github.com/bytedance/sonic"
	"github.com/bytedance/sonic/ast"
)

func TestSonicScratch(t *testing.T) {
	for _, c := range []struct{ full string; n int }{{" null", 2}, {"null", 1}, {"[true]", 3}, {`{"a":false}`, 7}, {`{"a":1}`, 6}, {`"abc"`, 3}, {`[1,2]`, 4}, {`{"eventType":10}`, 14}, {`{"eventType":null}`, 14}} {
		b := []byte(c.full)[:c.n]
		n, err := ast.NewSearcher(string(b)).GetByPath("eventType")
		r, _ := n.Raw()
		fmt.Printf("%-12q valid=%v  search=%q %v\n", b, sonic.Valid(b), r, err)
	}
}
