package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

func TestAllowBurstThenRefused(t *testing.T) {
	k := New(1, 3)
	for i := 0; i < 3; i++ {
		if ok, _ := k.Allow("a"); !ok {
			t.Fatalf("call %d refused within the burst", i)
		}
	}
	ok, retry := k.Allow("a")
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("4th call: ok=%v retry=%v, want refused with a retry within 1s", ok, retry)
	}
	if ok, _ := k.Allow("b"); !ok {
		t.Fatal("another key shares the bucket")
	}
}

func TestBlockedCountsHits(t *testing.T) {
	k := New(1.0/60, 2)
	if b, _ := k.Blocked("u"); b {
		t.Fatal("blocked before any hit")
	}
	k.Hit("u")
	if b, _ := k.Blocked("u"); b {
		t.Fatal("blocked after 1 of 2")
	}
	k.Hit("u")
	b, retry := k.Blocked("u")
	if !b || retry < 50*time.Second || retry > time.Minute {
		t.Fatalf("after 2 hits: blocked=%v retry=%v, want blocked ~1 min", b, retry)
	}
}

func TestZeroIsNoLimit(t *testing.T) {
	k := New(0, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := k.Allow("a"); !ok {
			t.Fatal("a disabled limit refused")
		}
		k.Hit("a")
	}
	if b, _ := k.Blocked("a"); b {
		t.Fatal("a disabled limit blocks")
	}
}

func TestMemoryBounded(t *testing.T) {
	k := New(1, 1)
	for i := 0; i < 3*maxKeys; i++ {
		k.Allow(strconv.Itoa(i)) // every bucket left empty: nothing is idle
	}
	if n := len(k.m); n > maxKeys {
		t.Fatalf("%d buckets held, cap %d", n, maxKeys)
	}
}
