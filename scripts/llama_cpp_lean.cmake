# Included into llama.cpp's own project() when building llama-cpp-python (CMAKE_ARGS, see the Makefile):
#   -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>
# llama-cpp-python loads only libllama and libggml*; its CMakeLists forces llama.cpp's `common` library on
# (for the multimodal mtmd library, which -DLLAVA_BUILD=OFF leaves out), and common plus cpp-httplib are
# about half of the compile time. Switching it off here, after that FORCE, skips them.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
