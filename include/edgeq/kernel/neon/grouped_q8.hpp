// NEON escape for the int8-activation GEMV (Cortex-A57: ARMv8.0, no sdot). To be written.
#pragma once
