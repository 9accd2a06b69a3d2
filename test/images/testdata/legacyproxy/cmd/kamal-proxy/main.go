// Command kamal-proxy is Caddy with its standard modules and kamal-operator's route module.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/kamal-operator/kamal-operator/images/kamal-proxy"
)

func main() { caddycmd.Main() }
