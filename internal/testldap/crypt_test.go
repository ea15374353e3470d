package testldap

import "testing"

func TestSHA512CryptKnownAnswers(t *testing.T) {
	got := sha512Crypt([]byte("x"), []byte("abcdefgh"), 200000)
	want := "$6$rounds=200000$abcdefgh$HtK8hSEACbTBqV9mGRwQ.wpLM.jOBSszpZ8yWSm2PdSx2HYaG8E8ejoMjTZJ1nAku4ILxADcSw1J6itW78UCW."
	if got != want {
		t.Fatalf("got %s", got)
	}
	got = sha512Crypt([]byte("Hello world!"), []byte("saltstring"), 5000)
	if got != "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1" {
		t.Fatalf("got %s", got)
	}
}
