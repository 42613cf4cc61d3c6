/**
 * Two projects: unit tests need nothing running (no Docker engine: `npx jest test/unit` works on a
 * laptop without one); integration and adversarial tests start the real processes from dist/ against
 * the real engine, so only they get the setup that pings Docker and builds the runtime images, and the
 * teardown that checks no test container is left. A project's global setup runs only when one of its
 * tests is selected.
 */
const shared = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: { isolatedModules: true, types: ['node', 'jest'] } }] },
  testMatch: ['**/*.test.ts'],
};

module.exports = {
  // Also read by jest.cluster.config.js.
  testEnvironment: shared.testEnvironment,
  transform: shared.transform,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'] },
    {
      ...shared,
      displayName: 'integration',
      roots: ['<rootDir>/test/integration', '<rootDir>/test/adversarial'],
      globalSetup: '<rootDir>/test/helpers/global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
    },
  ],
  // The compose cluster (test/cluster/) has its own command, npm run test:cluster.
  testTimeout: 120000,
  maxWorkers: 1,
  reporters: ['default', '<rootDir>/test/helpers/adversarial-reporter.js'],
};
