import { CpuGauge } from '../../worker/cpu-gauge';

describe('the cpu gauge', () => {
  test('gives the idle share between readings at least a period apart', async () => {
    const readings = [
      { idle: 1000, total: 2000 },
      { idle: 1100, total: 2400 }, // 100 idle of 400: 0.25
      { idle: 1100, total: 2800 }, // saturated
    ];
    let n = 0;
    const gauge = new CpuGauge(0, () => readings[Math.min(n++, readings.length - 1)]!);
    await new Promise((r) => setTimeout(r, 2));
    expect(gauge.idleFraction()).toBeCloseTo(0.25);
    await new Promise((r) => setTimeout(r, 2));
    expect(gauge.idleFraction()).toBe(0);
  });

  test('a reading within the period keeps the last figure; the real counters give a share between 0 and 1', () => {
    let reads = 0;
    const gauge = new CpuGauge(60_000, () => ({ idle: ++reads, total: reads * 2 }));
    expect(gauge.idleFraction()).toBe(1);
    expect(reads).toBe(1);
    const real = new CpuGauge(0).idleFraction();
    expect(real).toBeGreaterThanOrEqual(0);
    expect(real).toBeLessThanOrEqual(1);
  });
});
