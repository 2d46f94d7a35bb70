# What `npm install` builds (its postinstall runs this file with node-gyp), that is what ships:
# the sample agents (native-samples/, the README's table) into build/<config>/agents/ (the demo's
# and the default configuration's plugin directory), the C harness that drives an agent without
# agentfd (build/<config>/afd_harness), the Bacula adapter's callback shim (src/afd_bacula_shim.c)
# and, where libdeflate's header is installed (Debian: libdeflate-dev), the gzip addon
# afd_deflate; without it agentfd compresses gzip with node:zlib, slower but in the same format.
# The agents the tests need (broken ones, the Contract agent, Bacula test plugins) are built by
# test/fixtures/native/binding.gyp when the tests start, not here.
# Every target but afd_deflate is a plain shared library or program: agents are loaded with koffi,
# not as Node addons. Their shared compiler settings are in agent.gypi.
{
  'includes': ['agent.gypi'],
  'variables': {
    'has_libdeflate%': '<!(node -p "require(\'fs\').existsSync(\'/usr/include/libdeflate.h\') ? 1 : 0")',
    # libpq's header directory, empty where it is not installed (then the script prints one line
    # saying the PostgreSQL agent is not built, and why).
    'libpq_include%': '<!(node ../agents/postgresql/find-libpq.mjs include)',
    'libpq_libdir%': '<!(node ../agents/postgresql/find-libpq.mjs libdir)',
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
      # The fault-injection agent: misbehaves on purpose (job option fault) to show isolation.
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
      # The C harness (native-samples/harness/): drives an agent without agentfd, to debug it, and
      # is the throughput ceiling the benchmarks compare the bridge against.
      'type': 'executable',
      'target_name': 'afd_harness',
      'sources': ['../native-samples/harness/afd_harness.c', '../native-samples/common/sample_util.c'],
      'conditions': [
        ['OS=="linux"', { 'libraries': ['-ldl'] }],
      ],
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
    ['libpq_include!=""', {
      'targets': [
        {
          # A shipped agent (agents/, not a sample): PostgreSQL through libpq's replication
          # protocol. Built against the latest ABI generation (3: confined restore writes).
          'type': 'shared_library',
          'target_name': 'postgresql',
          'product_dir': '<(PRODUCT_DIR)/agents',
          'sources': ['../agents/postgresql/pg_agent.c', '../agents/postgresql/pg_connect.c',
                      '../agents/postgresql/pg_backup.c', '../agents/postgresql/pg_wal.c',
                      '../agents/postgresql/pg_restore.c'],
          'include_dirs': ['<(libpq_include)'],
          'conditions': [
            ['libpq_libdir!=""', { 'ldflags': ['-L<(libpq_libdir)'] }],
          ],
          'libraries': ['-lpq'],
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
