module hello-wasm

go 1.21
