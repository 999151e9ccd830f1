package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Read off a Docker container on a network with IPv4 172.30.116.0/24 and IPv6
// fd5e:4e71:1e1::/64, gateways .1 and ::1.
const (
	routeV4Sample = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t01741EAC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t00741EAC\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth1\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
	routeV6Sample = "fd5e4e7101e100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd5e4e7101e100000000000000000001 00000400 00000001 00000000 00000003     eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)

func TestDefaultGateways(t *testing.T) {
	dir := t.TempDir()
	v4, v6 := filepath.Join(dir, "route"), filepath.Join(dir, "ipv6_route")
	if err := os.WriteFile(v4, []byte(routeV4Sample), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v6, []byte(routeV6Sample), 0o600); err != nil {
		t.Fatal(err)
	}
	old4, old6 := routeFileV4, routeFileV6
	routeFileV4, routeFileV6 = v4, v6
	defer func() { routeFileV4, routeFileV6 = old4, old6 }()
	if got := fmt.Sprint(defaultGateways()); got != "[172.30.116.1/32 fd5e:4e71:1e1::1/128]" {
		t.Fatalf("defaultGateways() = %s", got)
	}
	routeFileV4, routeFileV6 = filepath.Join(dir, "missing"), filepath.Join(dir, "missing")
	if got := defaultGateways(); len(got) != 0 {
		t.Fatalf("without route files: %v", got)
	}
}
