package mfa_test

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/campusidp/campusidp/mfa"
)

// memStore is a small in-memory Records and Counters for unit tests; the
// real store runs the same operations in the idp integration tests.
type memStore struct {
	mu       sync.Mutex
	records  map[string]memRecord
	counters map[string]memCounter
}

type memRecord struct {
	value   []byte
	expires time.Time
}

type memCounter struct {
	count int
	reset time.Time
}

func newMemStore() *memStore {
	return &memStore{records: map[string]memRecord{}, counters: map[string]memCounter{}}
}

func (m *memStore) PutRecord(_ context.Context, kind, id string, v []byte, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[kind+"/"+id] = memRecord{append([]byte(nil), v...), exp}
	return nil
}

func (m *memStore) GetRecord(_ context.Context, kind, id string, now time.Time) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[kind+"/"+id]
	if !ok || !now.Before(r.expires) {
		return nil, mfa.ErrRecordNotFound
	}
	return r.value, nil
}

func (m *memStore) UpdateRecord(_ context.Context, kind, id string, now time.Time, fn func([]byte) ([]byte, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[kind+"/"+id]
	if !ok || !now.Before(r.expires) {
		return mfa.ErrRecordNotFound
	}
	v, err := fn(r.value)
	if err != nil {
		return err
	}
	r.value = v
	m.records[kind+"/"+id] = r
	return nil
}

func (m *memStore) DeleteRecord(_ context.Context, kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, kind+"/"+id)
	return nil
}

func (m *memStore) Hit(_ context.Context, key string, now time.Time, window time.Duration) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[key]
	if !now.Before(c.reset) {
		c = memCounter{reset: now.Add(window)}
	}
	c.count++
	m.counters[key] = c
	return c.count, c.reset, nil
}

func (m *memStore) Undo(_ context.Context, key string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[key]; ok && now.Before(c.reset) && c.count > 0 {
		c.count--
		m.counters[key] = c
	}
	return nil
}

func (m *memStore) Get(_ context.Context, key string, now time.Time) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[key]
	if !ok || !now.Before(c.reset) {
		return 0, time.Time{}, nil
	}
	return c.count, c.reset, nil
}

func (m *memStore) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.counters, key)
	return nil
}

func (m *memStore) ResetPrefix(_ context.Context, prefix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.counters {
		if strings.HasPrefix(k, prefix) {
			delete(m.counters, k)
		}
	}
	return nil
}
