namespace ContinualMoE.Cli.Reporting;

/// <summary>One timed service phase of <c>loadtest</c>: <see cref="Requests"/> single-image requests in
/// <see cref="Seconds"/>, their latencies, and what the service reported about itself over the phase (null when its
/// /health gave no counters): images per batch and <see cref="ModelBusy"/>, the share of the phase its inference workers
/// spent computing (mean over workers). <see cref="ServiceCpuCores"/> and <see cref="LoadGeneratorCpuCores"/> are CPU time per
/// second of the phase, in cores, of the service and of the clients (on one machine the clients' share is CPU the
/// offline figure does not pay).</summary>
internal sealed record ServicePhase(int Requests, double Seconds, IReadOnlyList<double> LatencyMilliseconds, int Failures,
    double? MeanBatchImages = null, double? ModelBusy = null, double? ServiceCpuCores = null, double LoadGeneratorCpuCores = 0)
{
    public double PredictionsPerSecond => Requests / Seconds;
    public double P50Milliseconds => LoadTestReport.Percentile(LatencyMilliseconds, 0.5);
    public double P99Milliseconds => LoadTestReport.Percentile(LatencyMilliseconds, 0.99);
    /// <summary>CPU milliseconds per prediction of the service and its clients together (null without the service's CPU time).</summary>
    public double? CpuMillisecondsPerPrediction => ServiceCpuCores is double cores ? 1000 * (cores + LoadGeneratorCpuCores) / PredictionsPerSecond : null;
}

/// <summary>One timed offline phase: <c>predict</c>'s path (<see cref="Deployment.DeployedModel.Predict(Deployment.UnlabelledImages, int, Action{int}?, CancellationToken)"/>)
/// on the same images, in the load test's process.</summary>
internal sealed record OfflinePhase(int Predictions, double Seconds, double CpuCores)
{
    public double PredictionsPerSecond => Predictions / Seconds;
    public double CpuMillisecondsPerPrediction => 1000 * CpuCores / PredictionsPerSecond;
}

/// <summary>Round <see cref="Round"/> (1-based) of an interleaved load test: the service phase against the mean of the
/// offline phases just before and just after it, so a machine whose speed drifts between phases moves both sides.</summary>
internal sealed record RoundRatio(int Round, double Service, double OfflineBefore, double OfflineAfter)
{
    public double Offline => (OfflineBefore + OfflineAfter) / 2;
    public double Ratio => Service / Offline;
}

/// <summary>
/// The figures of <c>loadtest</c>: service phases and, with a model, offline phases interleaved with them (offline,
/// service, offline, ..., service, offline). On a shared VM throughput drifts by ±25 % between runs seconds apart, so a
/// single service/offline ratio says little; each round's ratio uses the offline phases around it, and the median over
/// rounds (with its range) judges the service.
/// </summary>
internal sealed record LoadTestReport(int Concurrency, IReadOnlyList<ServicePhase> Service, IReadOnlyList<OfflinePhase> Offline)
{
    public int Failures => Service.Sum(p => p.Failures);
    /// <summary>All service phases together: predictions over their summed time.</summary>
    public double PredictionsPerSecond => Service.Sum(p => p.Requests) / Service.Sum(p => p.Seconds);
    public double? OfflinePredictionsPerSecond => Offline.Count == 0 ? null : Offline.Sum(p => p.Predictions) / Offline.Sum(p => p.Seconds);
    /// <summary>Latencies of every timed request of every service phase.</summary>
    public double P50Milliseconds => Percentile(AllLatencies, 0.5);
    public double P99Milliseconds => Percentile(AllLatencies, 0.99);
    private IReadOnlyList<double> AllLatencies => Service.SelectMany(p => p.LatencyMilliseconds).ToList();
    public IReadOnlyList<RoundRatio> Rounds => RoundRatios(Offline.Select(p => p.PredictionsPerSecond).ToList(), Service.Select(p => p.PredictionsPerSecond).ToList());
    public Spread? Ratio => Rounds.Count == 0 ? null : Spread.Of(Rounds.Select(r => r.Ratio).ToList());

    /// <summary>The ratio of each service phase to the mean of the offline phases around it. <paramref name="offline"/>
    /// has one phase more than <paramref name="service"/> (they alternate, offline first and last); without offline
    /// phases there are no rounds.</summary>
    public static IReadOnlyList<RoundRatio> RoundRatios(IReadOnlyList<double> offline, IReadOnlyList<double> service)
    {
        if (offline.Count == 0) return [];
        if (offline.Count != service.Count + 1)
            throw new ArgumentException($"interleaved phases need one offline phase more than service phases, not {offline.Count} and {service.Count}");
        return service.Select((s, i) => new RoundRatio(i + 1, s, offline[i], offline[i + 1])).ToList();
    }

    /// <summary>The nearest-rank <paramref name="quantile"/> (0 &lt; q ≤ 1) of <paramref name="values"/>: the smallest value
    /// with at least that share of the values at or below it.</summary>
    public static double Percentile(IReadOnlyList<double> values, double quantile)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(quantile * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
