using ContinualMoE.Scenarios;
using ContinualMoE.Training;

namespace ContinualMoE.Evaluation;

/// <summary>
/// Metrics of data-scarce and overlapping scenarios (docs/metrics.md), in percent: the final accuracy on the test images
/// of classes that more than one task held (overlapping) and of the other seen classes, each class's images counted
/// once; and, when the task-alone reference was run, forward transfer.
/// </summary>
/// <param name="Scenario">The scenario kind.</param>
/// <param name="OverlappingClassAccuracy">Final accuracy over the test images of seen classes held by two or more tasks; null if there are none.</param>
/// <param name="NonOverlappingClassAccuracy">Final accuracy over the test images of seen classes held by one task; null if there are none.</param>
/// <param name="OverlappingClasses">Number of seen classes held by two or more tasks.</param>
/// <param name="NonOverlappingClasses">Number of seen classes held by one task.</param>
/// <param name="ForwardTransfer">Forward transfer against the task-alone reference; null when it was not run.</param>
public sealed record ScenarioMetrics(
    string Scenario,
    double? OverlappingClassAccuracy,
    double? NonOverlappingClassAccuracy,
    int OverlappingClasses,
    int NonOverlappingClasses,
    ForwardTransfer? ForwardTransfer)
{
    /// <param name="latest">Per-class results of the last evaluation (<see cref="RunResults.LatestClasses"/>).</param>
    /// <param name="accuracy">The run's accuracy matrix (its diagonal is each task's accuracy right after learning it).</param>
    /// <param name="aloneAccuracies">Per task, the accuracy of the same method trained on that task alone; null: no forward transfer.</param>
    public static ScenarioMetrics Compute(IContinualScenario scenario, ClassResults latest, AccuracyMatrix accuracy,
        IReadOnlyList<double>? aloneAccuracies = null)
    {
        double overlapCorrect = 0, singleCorrect = 0;
        long overlapTotal = 0, singleTotal = 0;
        int overlapping = 0, single = 0;
        var seen = scenario.SeenClassMask(latest.AfterTask);
        for (var c = 0; c < scenario.ClassCount; c++)
        {
            if (!seen[c]) continue;
            if (scenario.TasksOfClass(c).Count(t => t <= latest.AfterTask) > 1)
            {
                overlapping++; overlapCorrect += latest.Correct[c]; overlapTotal += latest.Total[c];
            }
            else
            {
                single++; singleCorrect += latest.Correct[c]; singleTotal += latest.Total[c];
            }
        }
        static double? Percent(double correct, long total) => total == 0 ? null : 100.0 * correct / total;
        var transfer = aloneAccuracies is null ? null : Evaluation.ForwardTransfer.Compute(accuracy, aloneAccuracies);
        return new ScenarioMetrics(scenario.Kind, Percent(overlapCorrect, overlapTotal), Percent(singleCorrect, singleTotal),
            overlapping, single, transfer);
    }
}

/// <summary>
/// Forward transfer: how much learning the earlier tasks helps a new one. For task t, the accuracy on its classes right
/// after learning it, A[t, t], minus the accuracy of the same method trained on task t alone from the same backbone:
/// FWT_t = A[t, t] − R_t; <see cref="Mean"/> averages t = 1..k−1 (task 0 has nothing before it).
/// </summary>
/// <param name="AfterLearning">A[t, t] per task.</param>
/// <param name="Alone">R_t per task.</param>
/// <param name="PerTask">FWT_t per task (FWT_0 compares two one-task runs of task 0, so it is about 0).</param>
/// <param name="Mean">Mean of FWT_t over t = 1..k−1; null with one task.</param>
public sealed record ForwardTransfer(double[] AfterLearning, double[] Alone, double[] PerTask, double? Mean)
{
    public static ForwardTransfer Compute(AccuracyMatrix accuracy, IReadOnlyList<double> alone)
    {
        var k = accuracy.TasksTrained;
        if (alone.Count < k)
            throw new ContinualMoEException($"forward transfer needs a task-alone accuracy for each of the {k} tasks, got {alone.Count}");
        var after = Enumerable.Range(0, k).Select(t => accuracy[t, t]).ToArray();
        var perTask = after.Select((a, t) => a - alone[t]).ToArray();
        return new ForwardTransfer(after, alone.Take(k).ToArray(), perTask, k > 1 ? perTask.Skip(1).Average() : null);
    }
}
