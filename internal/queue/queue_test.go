package queue

import "testing"

func TestDrain(t *testing.T) {
	ch := make(chan int, 10)
	for i := 1; i <= 5; i++ {
		ch <- i
	}
	got := Drain(ch, []int{0}, 3)
	if len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("Drain to 3 = %v", got)
	}
	got = Drain(ch, nil, 10)
	if len(got) != 3 || got[2] != 5 {
		t.Fatalf("Drain the rest = %v", got)
	}
	if got := Drain(ch, nil, 10); len(got) != 0 {
		t.Fatalf("Drain of an empty channel = %v", got)
	}
}
