package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times. It is 100 on
// every Linux architecture Go supports; reading sysconf would need cgo.
const clockTicks = 100

// procSample is one reading of a process's memory and CPU.
type procSample struct {
	RSS     int64   // bytes (VmRSS)
	HWM     int64   // peak RSS bytes (VmHWM)
	CPU     float64 // user+system seconds since start
	Threads int
}

// readProc samples /proc/PID/status and /proc/PID/stat.
func readProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.RSS = n * 1024
		case "VmHWM:":
			s.HWM = n * 1024
		case "Threads:":
			s.Threads = int(n)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the parenthesised command name, which may contain spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14 overall
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15 overall
	s.CPU = float64(utime+stime) / clockTicks
	return s, nil
}

// resetPeakRSS resets the kernel's peak-RSS record (VmHWM) of pid to its
// current RSS (Linux 4.0+, "5" to /proc/PID/clear_refs; the process's
// owner may), so that VmHWM read later is the peak since now. Nothing
// else about the process changes.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// rusageCPU returns user and system CPU seconds for who (RUSAGE_SELF or
// RUSAGE_CHILDREN).
func rusageCPU(who int) (user, sys float64) {
	var ru syscall.Rusage
	if syscall.Getrusage(who, &ru) != nil {
		return 0, 0
	}
	tv := func(t syscall.Timeval) float64 {
		return float64(time.Duration(t.Sec)*time.Second+time.Duration(t.Usec)*time.Microsecond) / 1e9
	}
	return tv(ru.Utime), tv(ru.Stime)
}

// RaiseFileLimit lifts this process's soft RLIMIT_NOFILE to its hard limit
// and returns the resulting soft limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, err
		}
	}
	return lim.Cur, nil
}
