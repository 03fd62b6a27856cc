package broker

import (
	"fmt"
	"sync"

	"github.com/lesismal/nbio/logging"
	"github.com/rs/zerolog"
)

var nbioLogOnce sync.Once

// setNbioLogger routes nbio's package-global logger into zerolog, once per
// process: nbio has no per-engine logger. Its info lines (listener start,
// stop) are debug detail for a broker operator.
func setNbioLogger(l zerolog.Logger) {
	nbioLogOnce.Do(func() {
		logging.SetLogger(nbioLog{l.With().Str("component", "nbio").Logger()})
	})
}

type nbioLog struct{ l zerolog.Logger }

func (n nbioLog) SetLevel(int) {}
func (n nbioLog) Debug(format string, v ...interface{}) {
	if e := n.l.Trace(); e.Enabled() {
		e.Msg(fmt.Sprintf(format, v...))
	}
}
func (n nbioLog) Info(format string, v ...interface{}) {
	if e := n.l.Debug(); e.Enabled() {
		e.Msg(fmt.Sprintf(format, v...))
	}
}
func (n nbioLog) Warn(format string, v ...interface{}) { n.l.Warn().Msg(fmt.Sprintf(format, v...)) }
func (n nbioLog) Error(format string, v ...interface{}) {
	n.l.Error().Msg(fmt.Sprintf(format, v...))
}
