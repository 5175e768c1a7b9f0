// The old import path of test/support, kept for the test files not yet moved to './support/index.js'.
export * from './support/index.js';
