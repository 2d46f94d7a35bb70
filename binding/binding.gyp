# Builds the native side of agentfd with node-gyp: the sample agents (native-samples/) into
# build/<config>/agents/ (the demo's plugin directory) and the deliberately broken agents the tests
# use (test/fixtures/native/, including Bacula 9.6 test plugins named NAME-fd.so) into
# build/<config>/test-agents/, and the Bacula adapter's callback shim (src/afd_bacula_shim.c) into
# build/<config>/. Every target is a plain shared library: agents are loaded with koffi, not as
# Node addons. The one Node addon, afd_deflate (gzip
# with libdeflate), is built where libdeflate's header is installed (Debian: libdeflate-dev);
# without it agentfd compresses gzip with node:zlib, slower but in the same format.
{
  'variables': {
    'has_libdeflate%': '<!(node -p "require(\'fs\').existsSync(\'/usr/include/libdeflate.h\') ? 1 : 0")',
  },
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
  'targets': [
    {
      'type': 'shared_library',
      'target_name': 'exchange',
      'product_dir': '<(PRODUCT_DIR)/agents',
      'sources': ['../native-samples/exchange/exchange.c', '../native-samples/common/sample_util.c'],
    },
    {
      # A load generator: computed files, verified at restore (the benchmarks' 1,000,000 files).
      'type': 'shared_library',
      'target_name': 'synthetic',
      'product_dir': '<(PRODUCT_DIR)/agents',
      'sources': ['../native-samples/synthetic/synthetic.c', '../native-samples/common/sample_util.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'mssql',
      'product_dir': '<(PRODUCT_DIR)/agents',
      'sources': ['../native-samples/mssql/mssql.c', '../native-samples/common/sample_util.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'legacy',
      'product_dir': '<(PRODUCT_DIR)/agents',
      'defines': ['AFD_TARGET_ABI=1'],
      'sources': ['../native-samples/legacy/legacy.c', '../native-samples/common/sample_util.c'],
    },
    {
      # The fault-injection agent: misbehaves on purpose (job option fault) to test isolation.
      # Self-contained (no sample_util). Its C++ part throws, so it needs C++ exceptions.
      'type': 'shared_library',
      'target_name': 'faulty',
      'product_dir': '<(PRODUCT_DIR)/agents',
      'sources': ['../native-samples/faulty/faulty.c', '../native-samples/faulty/faulty_throw.cc',
                  '../native-samples/common/sample_util.c'],
      # -std=c11 from target_defaults would reach g++ too (and make it warn): C files only.
      'cflags!': ['-std=c11'],
      'cflags_c': ['-std=c11'],
      # RTTI too: under -fno-rtti g++ emits its own weak, exported copies of the typeinfo of
      # std::runtime_error; with RTTI it uses libstdc++'s and exports only Name and afd_negotiate.
      'cflags_cc': ['-fexceptions', '-frtti'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti'],
      'xcode_settings': {
        'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
        'GCC_ENABLE_CPP_RTTI': 'YES',
        # Not inherited from OTHER_CFLAGS, which holds -std=c11.
        'OTHER_CPLUSPLUSFLAGS': [],
      },
      'msvs_settings': { 'VCCLCompilerTool': { 'ExceptionHandling': 1 } },
      # Node's common.gypi turns the MSVC STL's exceptions off on Windows.
      'defines!': ['_HAS_EXCEPTIONS=0'],
    },
    {
      # The C test driver and throughput ceiling for the agents (native-samples/harness/).
      'type': 'executable',
      'target_name': 'afd_harness',
      'sources': ['../native-samples/harness/afd_harness.c', '../native-samples/common/sample_util.c'],
      'conditions': [
        ['OS=="linux"', { 'libraries': ['-ldl'] }],
      ],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_no_negotiate',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_no_negotiate.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_null_name',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_null_name.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_utf8_name',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_utf8_name.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_crash_name',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_crash_name.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_midstream',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_midstream.c'],
    },
    {
      'type': 'shared_library',
      'target_name': 'bad_future_abi',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/bad_future_abi.c'],
    },
    {
      # Breaks one rule of agentfd_agent.h at a time, chosen by job options (agent-contract tests).
      'type': 'shared_library',
      'target_name': 'contract_agent',
      'product_dir': '<(PRODUCT_DIR)/test-agents',
      'sources': ['../test/fixtures/native/contract_agent.c'],
    },
    {
      # The C half of the Bacula 9.6 FD plugin adapter (include/afd_bacula_shim.h): the variadic
      # bFuncs callbacks, formatted in C and forwarded to one non-variadic sink set from JS.
      # A plain shared library loaded with koffi like the agents, next to the addon.
      'type': 'shared_library',
      'target_name': 'afd_bacula_shim',
      'product_dir': '<(PRODUCT_DIR)',
      'product_prefix': '',
      'sources': ['src/afd_bacula_shim.c'],
    },
  ],
  'conditions': [
    ['OS!="win"', {
      # Bacula 9.6 FD test plugins (test/fixtures/native/bacula_test_plugin.c), named the Bacula
      # way, NAME-fd.so, without a "lib" prefix. One good plugin and four that bacula-fd's
      # compatibility check rejects; the bad ones differ only in their pInfo (one define each) and
      # each has a one-line wrapper source so that the variants do not share an object file.
      # POSIX only (open/mkdir/chmod and the platform's struct stat in the packets).
      'targets': [
        {
          'target_name': 'bacula_testplug',
          'product_name': 'testplug-fd',
          'type': 'shared_library',
          'product_dir': '<(PRODUCT_DIR)/test-agents',
          'product_prefix': '',
          'product_extension': 'so',
          'sources': ['../test/fixtures/native/bacula_test_plugin.c'],
        },
        {
          'target_name': 'bacula_badversion',
          'product_name': 'badversion-fd',
          'type': 'shared_library',
          'product_dir': '<(PRODUCT_DIR)/test-agents',
          'product_prefix': '',
          'product_extension': 'so',
          'defines': ['TESTPLUG_BAD_VERSION'],
          'sources': ['../test/fixtures/native/bacula_test_plugin_badversion.c'],
        },
        {
          'target_name': 'bacula_badsize',
          'product_name': 'badsize-fd',
          'type': 'shared_library',
          'product_dir': '<(PRODUCT_DIR)/test-agents',
          'product_prefix': '',
          'product_extension': 'so',
          'defines': ['TESTPLUG_BAD_SIZE'],
          'sources': ['../test/fixtures/native/bacula_test_plugin_badsize.c'],
        },
        {
          'target_name': 'bacula_badlicense',
          'product_name': 'badlicense-fd',
          'type': 'shared_library',
          'product_dir': '<(PRODUCT_DIR)/test-agents',
          'product_prefix': '',
          'product_extension': 'so',
          'defines': ['TESTPLUG_BAD_LICENSE'],
          'sources': ['../test/fixtures/native/bacula_test_plugin_badlicense.c'],
        },
        {
          'target_name': 'bacula_badmagic',
          'product_name': 'badmagic-fd',
          'type': 'shared_library',
          'product_dir': '<(PRODUCT_DIR)/test-agents',
          'product_prefix': '',
          'product_extension': 'so',
          'defines': ['TESTPLUG_BAD_MAGIC'],
          'sources': ['../test/fixtures/native/bacula_test_plugin_badmagic.c'],
        },
      ],
    }],
    ['has_libdeflate==1', {
      'targets': [
        {
          'target_name': 'afd_deflate',
          'sources': ['src/afd_deflate.c'],
          'cflags!': ['-fvisibility=hidden'],
          'ldflags!': ['-Wl,-z,defs'],
          'libraries': ['-ldeflate'],
        },
      ],
    }],
  ],
}
