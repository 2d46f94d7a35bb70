# The compiler and linker settings every agent library shares, shipped (binding.gyp) or built for
# the tests (test/fixtures/native/binding.gyp): C11, warnings on, and only the symbols marked
# AFD_EXPORT (Name, afd_negotiate) exported. Paths here are relative to this file.
{
  'target_defaults': {
    'include_dirs': ['include', '../native-samples/common'],
    'cflags': ['-std=c11', '-O2', '-Wall', '-Wextra', '-fvisibility=hidden'],
    'cflags!': ['-fno-exceptions'],
    'ldflags': ['-Wl,-z,defs'],
    'xcode_settings': { 'GCC_SYMBOLS_PRIVATE_EXTERN': 'YES', 'OTHER_CFLAGS': ['-std=c11'] },
    'msvs_settings': { 'VCCLCompilerTool': { 'AdditionalOptions': ['/utf-8'] } },
    'conditions': [
      ['OS=="win"', { 'product_prefix': '' }],
    ],
  },
}
