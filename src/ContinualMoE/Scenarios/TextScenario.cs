using ContinualMoE.Data;
using ContinualMoE.Data.Text;

namespace ContinualMoE.Scenarios;

/// <summary>
/// What a learner on a language model needs to know about the classes of a text scenario: the ids of each label's
/// text (the same ids training uses as targets), and for each generation task's class the metric and the longest
/// answer it may generate. Classes are global across tasks: a label text seen again is the same class.
/// </summary>
public sealed class TextLabelSpace
{
    public TextLabelSpace(IReadOnlyList<string> classNames, IReadOnlyList<int[]?> labelIds, IReadOnlyList<TextAnswerMetric?> metrics,
        IReadOnlyList<int> maxAnswerTokens, int? endOfSequenceId, Func<IEnumerable<long>, string> decodeAnswer)
    {
        ClassNames = classNames;
        LabelIds = labelIds;
        Metrics = metrics;
        MaxAnswerTokens = maxAnswerTokens;
        EndOfSequenceId = endOfSequenceId;
        DecodeAnswer = decodeAnswer;
    }

    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Per class: the label text's output ids, or null for a generation task's class.</summary>
    public IReadOnlyList<int[]?> LabelIds { get; }
    /// <summary>Per class: the metric of a generation task's class (null for label classes).</summary>
    public IReadOnlyList<TextAnswerMetric?> Metrics { get; }
    /// <summary>Per class: most new tokens generated for a generation task's sample (its longest reference, EOS included).</summary>
    public IReadOnlyList<int> MaxAnswerTokens { get; }
    public int? EndOfSequenceId { get; }
    public Func<IEnumerable<long>, string> DecodeAnswer { get; }

    public bool IsGeneration(int label) => LabelIds[label] is null;
}

/// <summary>
/// A stream of text tasks as a scenario the trainer runs like any other (docs/text-tasks.md). Each task's examples are
/// tokenised once with the run's <see cref="TextPromptFormat"/>. A classification task's classes are its label texts,
/// global across tasks (a label text seen again, after trimming, is the same class, so tasks can share labels); a
/// generation task gets one class of its own, named after the task, whose samples are scored by generating the answer
/// and applying the task's metric (exact match unless given). The accuracy matrix, BWT and FWT then come out of the
/// same machinery as for images.
/// </summary>
public sealed class TextScenario : ContinualScenario
{
    public const string KindName = "text";

    private TextScenario(ContinualScenario scenario, TextLabelSpace labels, IReadOnlyList<TextTaskData> source) : base(scenario)
    {
        Labels = labels;
        Source = source;
    }

    public TextLabelSpace Labels { get; }
    public IReadOnlyList<TextTaskData> Source { get; }

    /// <summary>Builds the scenario; <paramref name="metrics"/> optionally gives a generation task (by name) its own metric.</summary>
    public static TextScenario Create(IReadOnlyList<TextTaskData> tasks, TextPromptFormat format,
        IReadOnlyDictionary<string, TextAnswerMetric>? metrics = null)
    {
        if (tasks.Count == 0) throw new ContinualMoEException("a text scenario needs at least one task");
        var classNames = new List<string>();
        var labelIds = new List<int[]?>();
        var classMetrics = new List<TextAnswerMetric?>();
        var maxAnswer = new List<int>();
        var classOfLabel = new Dictionary<string, int>(StringComparer.Ordinal);
        var perTask = new List<(TextTaskData Task, int[] Classes, Func<TextExample, int> LabelOf)>();
        foreach (var task in tasks)
        {
            if (task.Train.Count == 0 || task.Test.Count == 0)
                throw new ContinualMoEException($"text task '{task.Name}' needs training and test examples (has {task.Train.Count} and {task.Test.Count})");
            if (task.IsClassification)
            {
                var classes = new List<int>();
                foreach (var label in task.Labels.Select(l => l.Trim()).Distinct())
                {
                    if (!classOfLabel.TryGetValue(label, out var c))
                    {
                        classOfLabel[label] = c = classNames.Count;
                        classNames.Add(label);
                        labelIds.Add(format.OutputIds(label));
                        classMetrics.Add(null);
                        maxAnswer.Add(0);
                    }
                    classes.Add(c);
                }
                var taskName = task.Name;
                perTask.Add((task, classes.ToArray(), e => classOfLabel.TryGetValue(e.Output.Trim(), out var c) && classes.Contains(c)
                    ? c
                    : throw new ContinualMoEException($"text task '{taskName}': output '{e.Output}' is not one of its labels ({string.Join(", ", task.Labels)})")));
            }
            else
            {
                var c = classNames.Count;
                classNames.Add($"{task.Name} (generated answer)");
                labelIds.Add(null);
                classMetrics.Add(metrics is not null && metrics.TryGetValue(task.Name, out var metric) ? metric : TextMetrics.AnswerMetricFor(task.Name));
                maxAnswer.Add(task.Train.Concat(task.Test).Max(e => format.OutputIds(e.Output).Length));
                perTask.Add((task, [c], _ => c));
            }
        }
        var taskData = perTask.Select((p, t) =>
        {
            var c0 = p.Classes[0];
            TokenizedText Encode(TextExample e) => labelIds[c0] is null
                ? format.Encode(e) with { Metric = classMetrics[c0], MaxAnswerTokens = maxAnswer[c0] }
                : format.Encode(e);
            TextTaskDataset Set(IReadOnlyList<TextExample> examples, string split) =>
                new($"{p.Task.Name}-{split}", classNames, examples.Select(Encode).ToList(), examples.Select(p.LabelOf).ToList());
            return new TaskData(t, p.Classes, Set(p.Task.Train, "train"), Set(p.Task.Test, "test"));
        }).ToList();
        var labels = new TextLabelSpace(classNames, labelIds, classMetrics, maxAnswer, format.EndOfSequenceId, format.Answer);
        return new TextScenario(FromTasks(KindName, taskData, classNames), labels, tasks);
    }
}
