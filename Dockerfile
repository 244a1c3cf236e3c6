# One image for every BeastFlow process; the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --no-cache-dir -r requirements/lock.txt
COPY . .
EXPOSE 8000
CMD ["uvicorn", "beastflow.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
