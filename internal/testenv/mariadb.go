package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// MariaDB starts a throwaway MariaDB server (Debian's mariadb-server) on a free loopback port
// with an empty database named db, and returns its DSN in the go-sql-driver form New API
// takes ("root@tcp(127.0.0.1:port)/db"). The server runs as the mysql user when we are root,
// with the character set and collation Debian's packaged server uses (utf8mb4,
// utf8mb4_general_ci: case- and accent-insensitive). It is stopped at cleanup. The test
// skips when mariadbd is not installed.
func MariaDB(t testing.TB, db string) string {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/mariadbd"); err2 != nil {
			t.Skip("mariadb: mariadbd not found (apt-get install -y mariadb-server)")
		}
		bin = "/usr/sbin/mariadbd"
	}
	dir, err := os.MkdirTemp("", "sentinel-mariadb-")
	if err != nil {
		fatalf(t, "mariadb: %v", err)
	}
	var user []string
	if os.Geteuid() == 0 {
		user = []string{"--user=mysql"}
		if out, err := exec.Command("chown", "mysql:mysql", dir).CombinedOutput(); err != nil {
			fatalf(t, "mariadb: chown: %v: %s", err, out)
		}
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "mysqld.sock")
	install := exec.Command("mariadb-install-db", append(user, "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db")...)
	if out, err := install.CombinedOutput(); err != nil {
		fatalf(t, "mariadb-install-db: %v: %s", err, out)
	}
	port, err := PickPort()
	if err != nil {
		fatalf(t, "mariadb: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"--no-defaults"}, append(user, "--datadir="+data,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "mariadb.pid"), "--skip-log-bin",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-flush-log-at-trx-commit=0", "--max-connections=500")...)...)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // runs after the process is killed
	proc := StartProcess(t, "mariadb", cmd, filepath.Join(dir, "mariadb.log"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-proc.Exited:
			fatalf(t, "mariadb exited:\n%s", tail(proc.Log, 20))
		default:
		}
		if time.Now().After(deadline) {
			fatalf(t, "mariadb did not listen within 60s:\n%s", tail(proc.Log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	create := exec.Command("mariadb", "--socket="+sock, "-uroot", "-e",
		fmt.Sprintf("CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci", db))
	if out, err := create.CombinedOutput(); err != nil {
		fatalf(t, "mariadb: create database: %v: %s", err, out)
	}
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", port, db)
}
