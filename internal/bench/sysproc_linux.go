package bench

import "syscall"

// benchSysProcAttr puts a bench daemon in a process group of its own, so
// that ^C reaches bench, which stops the daemons in order, and has the
// kernel kill it should bench die without stopping it.
func benchSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
