package controllers

import "sync"

// hostReadConcurrency is how many hosts a pass reads at once. A pass reads every placed host
// (its containers, its routes): one at a time, a fleet of 1,000 spends seconds in round trips
// at each batch boundary; a few dozen at once keep the connections busy without flooding
// the Engine APIs.
const hostReadConcurrency = 32

// readHosts runs read for each server, at most hostReadConcurrency at once, and returns the
// results and the errors by server. A panic in read is that server's error.
func readHosts[T any](servers []string, read func(server string) (T, error)) (map[string]T, map[string]error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = make(map[string]T, len(servers))
		errs = map[string]error{}
		sem  = make(chan struct{}, hostReadConcurrency)
	)
	for _, server := range servers {
		sem <- struct{}{}
		wg.Add(1)
		var v T
		goSafe(func() error {
			var err error
			v, err = read(server)
			return err
		}, func(err error) {
			mu.Lock()
			if err != nil {
				errs[server] = err
			} else {
				out[server] = v
			}
			mu.Unlock()
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	return out, errs
}
