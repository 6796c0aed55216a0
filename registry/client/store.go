package client

// Path returns the repository path (Name): with String and Host, what the
// engine needs to know of any store it copies to and from.
func (r *Repo) Path() string { return r.Name }
