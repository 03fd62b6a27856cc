// Package bench is the load-test harness for the WebSocket event broker and
// the baseline server in bench/baseline. Run executes one scenario (fanout,
// idle, echo, connect) against a target given only as addresses and a key,
// and returns a Result that marshals to the documented JSON report.
// RunResume (resuming clients across restarting nodes) and RunPresence
// (GET /api/online over many JWT-identified connections) are scenarios of
// their own, with their own configs and reports.
//
// Client connections are nbio (non-blocking, epoll-driven) clients so tens of
// thousands of subscribers need no goroutine each. They can be spread over
// several loopback source addresses (so one source address's ephemeral
// ports are not the limit) and over several worker processes (so one
// process's open-file limit is not the limit): the coordinator re-executes
// the current binary with WorkerFlag and drives each worker with JSON lines
// on stdin/stdout; see RunWorker.
//
// Concurrency: Run owns every goroutine it starts and returns only after
// they and all worker processes have finished. Message callbacks run on
// nbio's goroutines and must not block; they only record into sharded
// histograms and atomic counters. Only loopback targets are accepted.
package bench
