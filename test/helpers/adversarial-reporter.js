/**
 * Counts the cases of the adversarial suites (test/adversarial/) as jest ran them and prints one
 * line at the end of the run: `adversarial: N cases, M passed`. Nothing is printed when none ran.
 */
class AdversarialReporter {
  onRunComplete(_contexts, results) {
    let cases = 0;
    let passed = 0;
    for (const file of results.testResults) {
      if (!/[\\/]test[\\/]adversarial[\\/]/.test(file.testFilePath)) continue;
      for (const test of file.testResults) {
        if (test.status === 'pending' || test.status === 'todo' || test.status === 'disabled') continue;
        cases += 1;
        if (test.status === 'passed') passed += 1;
      }
      // A suite that failed before its tests ran (a crash in beforeAll) counts as failed cases.
      if (file.testExecError && file.testResults.length === 0) cases += 1;
    }
    if (cases > 0) process.stdout.write(`adversarial: ${cases} cases, ${passed} passed\n`);
  }
}

module.exports = AdversarialReporter;
