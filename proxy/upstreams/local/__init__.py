"""The embedded local model: a GGUF file run in process by llama.cpp.

``thinkstop.proxy.upstreams.local.adapter.LocalUpstream`` implements the upstream
protocol; llama.cpp is imported only when a model is loaded (the ``local`` / ``testmodel`` extras).
"""
