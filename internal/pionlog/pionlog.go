// Package pionlog lets the pion libraries (TURN client and server) log
// through log/slog. Pion is chatty and logs per packet, so its Info and
// below go to slog's Debug level and only its warnings and errors to Warn;
// nothing here adds secrets, but pion may log peer addresses and TURN
// usernames, which is why even its errors are not raised to slog's Error.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory returns a pion LoggerFactory writing to logger; each pion scope
// ("turn", "turnc", …) becomes a "pion" attribute. A nil logger discards.
func Factory(logger *slog.Logger) logging.LoggerFactory {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return factory{logger: logger}
}

type factory struct{ logger *slog.Logger }

func (f factory) NewLogger(scope string) logging.LeveledLogger {
	return leveled{logger: f.logger.With("pion", scope)}
}

type leveled struct{ logger *slog.Logger }

func (l leveled) log(level slog.Level, msg string) {
	l.logger.Log(context.Background(), level, msg)
}

func (l leveled) logf(level slog.Level, format string, args ...any) {
	// Formatting costs even when the level is off; pion logs per packet.
	if !l.logger.Enabled(context.Background(), level) {
		return
	}
	l.log(level, fmt.Sprintf(format, args...))
}

// Trace is dropped: pion traces every packet.
func (l leveled) Trace(string)          {}
func (l leveled) Tracef(string, ...any) {}

func (l leveled) Debug(msg string)                  { l.log(slog.LevelDebug, msg) }
func (l leveled) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l leveled) Info(msg string)                   { l.log(slog.LevelDebug, msg) }
func (l leveled) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l leveled) Warn(msg string)                   { l.log(slog.LevelWarn, msg) }
func (l leveled) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l leveled) Error(msg string)                  { l.log(slog.LevelWarn, msg) }
func (l leveled) Errorf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }
