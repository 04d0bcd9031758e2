using System.Globalization;
using System.Text;
using ContinualMoE.Training;

namespace ContinualMoE.Cli.Reporting;

/// <summary>
/// What a growing expert pool learned, written after each task for learners that implement
/// <see cref="IExpertPoolGrowth"/> (SAMoE): expert_pool.png (in/out-of-distribution split and experts added per task),
/// expert_usage.png (share of each task's samples per expert), task_similarity.png (tasks that share experts) and
/// expert_pool.csv (the same per-task figures with the trainable-parameter count).
/// </summary>
public static class PoolPlots
{
    public static void Record(IExpertPoolGrowth learner, RunFolder folder)
    {
        var history = learner.PoolHistory;
        if (history.Tasks.Count == 0) return;
        var tasks = history.Tasks;
        var labels = tasks.Select(t => $"task {t.Task + 1}").ToArray();
        Plots.PoolGrowth(tasks.Select(t => t.InDistribution).ToArray(), tasks.Select(t => t.OutOfDistribution).ToArray(),
            tasks.Select(t => t.ExpertsAdded).ToArray(), tasks.Select(t => t.ActiveExperts).ToArray(), labels,
            folder.ResultPath("expert_pool.png"), "Training samples per task: reuse or new experts");
        var used = Math.Max(1, tasks[^1].ActiveExperts);
        var usage = new double[tasks.Count, used];
        for (var r = 0; r < tasks.Count; r++) for (var m = 0; m < used; m++) usage[r, m] = history.Usage[r, m];
        Plots.ExpertUtilisation(usage, labels, folder.ResultPath("expert_usage.png"), "Share of each task's training samples per expert");
        Plots.TaskSimilarity(history.TaskSimilarity, labels, folder.ResultPath("task_similarity.png"), "Task similarity from shared expert use");

        var csv = new StringBuilder("task,experts_added,active_experts,in_distribution,out_of_distribution,trainable_parameters\n");
        foreach (var t in tasks)
            csv.Append(CultureInfo.InvariantCulture, $"{t.Task + 1},{t.ExpertsAdded},{t.ActiveExperts},{t.InDistribution},{t.OutOfDistribution},{t.TrainableParameters}\n");
        AtomicFile.WriteAllText(folder.ResultPath("expert_pool.csv"), csv.ToString());
    }
}
