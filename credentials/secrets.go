package credentials

import "sync"

// SecretSet collects every secret a run learns (auth-file passwords,
// docker config passwords and tokens, credential-helper answers) so that a
// Redactor can scrub them from any output, whenever they were learnt.
type SecretSet struct {
	mu sync.RWMutex
	s  []string
}

// Add remembers secrets; values shorter than 4 characters are ignored (they
// would mangle ordinary text and protect nothing).
func (s *SecretSet) Add(secrets ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		for _, have := range s.s {
			if have == v {
				continue next
			}
		}
		s.s = append(s.s, v)
	}
}

// List returns the secrets known so far.
func (s *SecretSet) List() []string {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.s...)
}
