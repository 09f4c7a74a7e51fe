package sse

// hijackSupported: the pool needs non-blocking socket writes and epoll (internal/netpoll).
const hijackSupported = true
