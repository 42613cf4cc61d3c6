/** Unit tests need nothing running; integration tests start the real processes from dist/. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { isolatedModules: true, types: ['node', 'jest'] } }] },
  testMatch: ['**/*.test.ts'],
  // The compose cluster has its own command, npm run test:cluster.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/cluster/'],
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 120000,
  maxWorkers: 1,
  reporters: ['default', '<rootDir>/test/helpers/adversarial-reporter.js'],
};
