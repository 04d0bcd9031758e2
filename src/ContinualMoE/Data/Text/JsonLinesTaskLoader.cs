using System.Text.Json;

namespace ContinualMoE.Data.Text;

/// <summary>
/// A user's own text tasks in JSON lines, one example a line:
/// <c>{"instruction": "...", "input": "...", "output": "..."}</c> ("output" required, the others default to ""), with an
/// optional <c>"labels": [...]</c> (the choice list, which makes the task a classification task; every output must be
/// one of the labels) and, in a single file holding several tasks, <c>"task": "name"</c>. Layouts of the path:
/// <list type="bullet">
/// <item>a folder with a subfolder per task, each with train.jsonl and test.jsonl, or one .jsonl file (split with the
/// seed); an optional labels.json (JSON array) in a task folder gives its labels;</item>
/// <item>a folder of files per task: <c>name.train.jsonl</c> + <c>name.test.jsonl</c>, or <c>name.jsonl</c> (split);</item>
/// <item>one .jsonl file: its tasks are the lines' "task" values in order of first appearance (or one task named after
/// the file), each split with the seed.</item>
/// </list>
/// Folder tasks come in ordinal name order unless a comma list of task names gives the order.
/// </summary>
public static class JsonLinesTaskLoader
{
    public static IReadOnlyList<TextTaskData> Load(string path, string? order = null, TextTaskOptions? options = null)
    {
        options ??= new TextTaskOptions();
        List<TextTaskData> tasks;
        if (File.Exists(path)) tasks = LoadSingleFile(path, options);
        else if (Directory.Exists(path)) tasks = LoadFolder(path, options);
        else throw ContinualMoEException.ForFile(path, "JSON-lines task file or folder not found");
        if (tasks.Count == 0) throw ContinualMoEException.ForFile(path, "no tasks: expected task subfolders, .jsonl files, or a .jsonl file");
        return string.IsNullOrWhiteSpace(order) ? tasks : Reorder(path, tasks, order);
    }

    private static List<TextTaskData> Reorder(string path, List<TextTaskData> tasks, string order) =>
        order.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(name => tasks.FirstOrDefault(t => t.Name.Equals(name, StringComparison.Ordinal))
                ?? throw ContinualMoEException.ForFile(path, $"unknown task '{name}' in the order; tasks here: {string.Join(", ", tasks.Select(t => t.Name))}"))
            .ToList();

    private static List<TextTaskData> LoadFolder(string folder, TextTaskOptions options)
    {
        var tasks = new List<TextTaskData>();
        foreach (var sub in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(sub);
            var labels = File.Exists(Path.Combine(sub, "labels.json")) ? TextFiles.ReadStringArray(Path.Combine(sub, "labels.json")) : [];
            string train = Path.Combine(sub, "train.jsonl"), test = Path.Combine(sub, "test.jsonl");
            if (File.Exists(train) || File.Exists(test))
            {
                tasks.Add(FromSplitFiles(name, TextFiles.RequireFile(train, "training file"), TextFiles.RequireFile(test, "test file"), labels, options));
                continue;
            }
            var files = Directory.GetFiles(sub, "*.jsonl").Order(StringComparer.Ordinal).ToList();
            if (files.Count != 1)
                throw ContinualMoEException.ForFile(sub, files.Count == 0 ? "task folder has no .jsonl file (expected train.jsonl + test.jsonl, or one .jsonl file)"
                    : $"task folder has {files.Count} .jsonl files; name them train.jsonl and test.jsonl, or keep one file");
            tasks.Add(FromOneFile(name, files[0], labels, options));
        }
        var loose = Directory.GetFiles(folder, "*.jsonl").Order(StringComparer.Ordinal).ToList();
        foreach (var group in loose.GroupBy(TaskNameOf, StringComparer.Ordinal))
        {
            var name = group.Key;
            if (tasks.Any(t => t.Name == name)) throw ContinualMoEException.ForFile(group.First(), $"task '{name}' is given both as a folder and as files");
            string train = Path.Combine(folder, name + ".train.jsonl"), test = Path.Combine(folder, name + ".test.jsonl"), whole = Path.Combine(folder, name + ".jsonl");
            if (File.Exists(train) || File.Exists(test))
            {
                if (File.Exists(whole)) throw ContinualMoEException.ForFile(whole, $"task '{name}' has both a whole file and split files");
                tasks.Add(FromSplitFiles(name, TextFiles.RequireFile(train, "training file"), TextFiles.RequireFile(test, "test file"), [], options));
            }
            else tasks.Add(FromOneFile(name, whole, [], options));
        }
        return tasks.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
    }

    private static string TaskNameOf(string file)
    {
        var name = Path.GetFileNameWithoutExtension(file);
        foreach (var suffix in new[] { ".train", ".test" })
            if (name.EndsWith(suffix, StringComparison.Ordinal)) return name[..^suffix.Length];
        return name;
    }

    private static List<TextTaskData> LoadSingleFile(string file, TextTaskOptions options)
    {
        var rows = ReadRows(file);
        var byTask = new List<(string Name, List<Row> Rows)>();
        foreach (var row in rows)
        {
            var name = row.Task.Length > 0 ? row.Task : Path.GetFileNameWithoutExtension(file);
            var group = byTask.FirstOrDefault(g => g.Name == name);
            if (group.Rows == null) byTask.Add(group = (name, []));
            group.Rows.Add(row);
        }
        return byTask.Select(g => Build(g.Name, file, g.Rows, null, [], options)).ToList();
    }

    private static TextTaskData FromOneFile(string name, string file, List<string> labels, TextTaskOptions options) =>
        Build(name, file, ReadRows(file), null, labels, options);

    private static TextTaskData FromSplitFiles(string name, string trainFile, string testFile, List<string> labels, TextTaskOptions options)
    {
        var train = ReadRows(trainFile);
        var test = ReadRows(testFile);
        return Build(name, trainFile, train, (testFile, test), labels, options);
    }

    private sealed record Row(TextExample Example, IReadOnlyList<string> Labels, string Task, string File, int Line);

    /// <summary>Builds a task: labels are the union of the folder's labels.json and the lines' lists (first-seen order);
    /// with labels, every output must be one of them. Without a test file, a seeded split.</summary>
    private static TextTaskData Build(string name, string file, List<Row> rows, (string File, List<Row> Rows)? test, List<string> folderLabels, TextTaskOptions options)
    {
        if (rows.Count == 0) throw ContinualMoEException.ForFile(file, $"task '{name}' has no examples");
        if (test is { Rows.Count: 0 }) throw ContinualMoEException.ForFile(test.Value.File, $"task '{name}' has no test examples");
        var all = test is { } t ? rows.Concat(t.Rows).ToList() : rows;
        var labels = folderLabels.Concat(all.SelectMany(r => r.Labels)).Distinct(StringComparer.Ordinal).ToList();
        if (labels.Count > 0)
        {
            var known = new HashSet<string>(labels, StringComparer.Ordinal);
            var bad = all.FirstOrDefault(r => !known.Contains(r.Example.Output));
            if (bad != null) throw ContinualMoEException.ForFile(bad.File, $"line {bad.Line}: unknown label '{bad.Example.Output}' (task '{name}' has labels: {string.Join(", ", labels)})");
        }
        List<TextExample> train, testExamples;
        if (test is { } given)
        {
            train = rows.Select(r => r.Example).ToList();
            testExamples = given.Rows.Select(r => r.Example).ToList();
        }
        else
        {
            if (rows.Count < 2) throw ContinualMoEException.ForFile(file, $"task '{name}' has {rows.Count} example; a seeded train/test split needs at least 2");
            (train, testExamples) = TextSampling.Split(rows.Select(r => r.Example).ToList(), options.TestFraction, options.Seed, name);
        }
        return new TextTaskData(name,
            TextSampling.Cap(train, labels.Count > 0 ? options.TrainPerClass : null, options.TrainLimit, options.Seed, name + "/train"),
            TextSampling.Cap(testExamples, labels.Count > 0 ? options.TestPerClass : null, options.TestLimit, options.Seed, name + "/test"),
            labels);
    }

    private static List<Row> ReadRows(string file)
    {
        var rows = new List<Row>();
        var lines = File.ReadAllLines(TextFiles.RequireFile(file, "JSON-lines file"));
        for (var i = 0; i < lines.Length; i++)
        {
            var text = lines[i].Trim();
            if (text.Length == 0) continue;
            JsonElement item;
            try { using var document = JsonDocument.Parse(text); item = document.RootElement.Clone(); }
            catch (JsonException e) { throw ContinualMoEException.ForFile(file, $"line {i + 1}: malformed JSON ({e.Message.Split(". ")[0].TrimEnd('.')})", e); }
            if (item.ValueKind != JsonValueKind.Object) throw ContinualMoEException.ForFile(file, $"line {i + 1}: expected a JSON object");
            var example = new TextExample(
                TextFiles.Field(file, item, i + 1, "instruction", required: false),
                TextFiles.Field(file, item, i + 1, "input", required: false),
                TextFiles.Field(file, item, i + 1, "output"));
            rows.Add(new Row(example, LabelsOf(file, item, i + 1), TextFiles.Field(file, item, i + 1, "task", required: false), file, i + 1));
        }
        return rows;
    }

    private static IReadOnlyList<string> LabelsOf(string file, JsonElement item, int line)
    {
        if (!item.TryGetProperty("labels", out var labels) && !(item.TryGetProperty("label", out labels) && labels.ValueKind == JsonValueKind.Array)) return [];
        if (labels.ValueKind != JsonValueKind.Array || labels.EnumerateArray().Any(l => l.ValueKind != JsonValueKind.String))
            throw ContinualMoEException.ForFile(file, $"line {line}: \"labels\" must be an array of strings");
        return labels.EnumerateArray().Select(l => l.GetString()!).ToList();
    }
}
