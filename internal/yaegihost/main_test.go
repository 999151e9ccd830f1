package yaegihost

import (
	"testing"

	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
