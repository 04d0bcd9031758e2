using ContinualMoE.Cli.Reporting;

namespace ContinualMoE.Tests.Reporting;

/// <summary>The interleaved load test's arithmetic: each service phase against the offline phases around it, the median
/// ratio with its range, nearest-rank percentiles, pooled latencies.</summary>
public class LoadTestReportTests
{
    [Fact]
    public void EachRoundDividesTheServiceByTheMeanOfTheOfflinePhasesAroundIt()
    {
        var rounds = LoadTestReport.RoundRatios([200, 300, 250, 100], [200, 220, 140]);
        Assert.Equal([1, 2, 3], rounds.Select(r => r.Round));
        Assert.Equal([200.0, 300, 250], rounds.Select(r => r.OfflineBefore));
        Assert.Equal([300.0, 250, 100], rounds.Select(r => r.OfflineAfter));
        Assert.Equal(0.8, rounds[0].Ratio, 12);    // 200 / 250
        Assert.Equal(0.8, rounds[1].Ratio, 12);    // 220 / 275
        Assert.Equal(0.8, rounds[2].Ratio, 12);    // 140 / 175: a slow machine moves both sides of the ratio
    }

    [Fact]
    public void PhasesThatDoNotAlternateAreRefusedAndNoOfflinePhasesGiveNoRounds()
    {
        Assert.Throws<ArgumentException>(() => LoadTestReport.RoundRatios([200, 300], [200, 220]));
        Assert.Throws<ArgumentException>(() => LoadTestReport.RoundRatios([200, 300, 250, 100], [200]));
        Assert.Empty(LoadTestReport.RoundRatios([], [200, 220]));
    }

    [Fact]
    public void TheSpreadIsTheMedianWithItsRange()
    {
        Assert.Equal(new Spread(0.7, 0.6, 0.9, 3), Spread.Of([0.9, 0.6, 0.7]));
        Assert.Equal(new Spread(0.75, 0.6, 0.9, 4), Spread.Of([0.9, 0.6, 0.7, 0.8]));   // even count: mean of the middle two
        Assert.Throws<ArgumentException>(() => Spread.Of([]));
    }

    [Fact]
    public void PercentilesAreNearestRankOverUnsortedValues()
    {
        double[] latencies = [.. Enumerable.Range(1, 100).Select(i => (double)(101 - i))];   // 100 down to 1
        Assert.Equal(50, LoadTestReport.Percentile(latencies, 0.5));
        Assert.Equal(99, LoadTestReport.Percentile(latencies, 0.99));
        Assert.Equal(100, LoadTestReport.Percentile(latencies, 1));
        Assert.Equal(7, LoadTestReport.Percentile([7], 0.99));
        Assert.True(double.IsNaN(LoadTestReport.Percentile([], 0.5)));
    }

    [Fact]
    public void TheReportPoolsServicePhasesAndTakesTheMedianRoundRatio()
    {
        var report = new LoadTestReport(4,
            [new ServicePhase(100, 1.0, [.. Enumerable.Range(1, 100).Select(i => (double)i)], 0),
             new ServicePhase(100, 0.5, [.. Enumerable.Range(101, 100).Select(i => (double)i)], 2, ServiceCpuCores: 1.5, LoadGeneratorCpuCores: 0.5)],
            [new OfflinePhase(100, 0.5, 1), new OfflinePhase(100, 0.5, 1), new OfflinePhase(100, 0.25, 2)]);
        Assert.Equal(2, report.Failures);
        Assert.Equal(200 / 1.5, report.PredictionsPerSecond, 9);            // 200 requests in 1.5 s
        Assert.Equal(300 / 1.25, report.OfflinePredictionsPerSecond!.Value, 9);
        Assert.Equal(100, report.P50Milliseconds);                         // over both phases' 200 latencies
        Assert.Equal(198, report.P99Milliseconds);
        Assert.Equal([0.5, 200 / 300.0], report.Rounds.Select(r => r.Ratio));   // 100 / 200; 200 / mean(200, 400)
        Assert.Equal(new Spread((0.5 + 200 / 300.0) / 2, 0.5, 200 / 300.0, 2), report.Ratio);
        Assert.Equal(10, report.Service[1].CpuMillisecondsPerPrediction!.Value, 9);   // 2 cores at 200 predictions/s
        Assert.Null(report.Service[0].CpuMillisecondsPerPrediction);
        Assert.Equal(5, report.Offline[0].CpuMillisecondsPerPrediction, 9);

        var serviceOnly = report with { Offline = [] };
        Assert.Empty(serviceOnly.Rounds);
        Assert.Null(serviceOnly.Ratio);
        Assert.Null(serviceOnly.OfflinePredictionsPerSecond);
    }
}
